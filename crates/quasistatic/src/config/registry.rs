//! The registry behind every `kind = "..."` section, and the messages for tables serde rejects.
//!
//! A section (`[model]`, `[data]`, `[noise]`, `[optimizer]`, `[optimizer.schedule]`) is an
//! internally tagged enum declared with [`kinds!`]: one line per kind names the kind (and its
//! aliases) and the struct of its fields. The struct is an ordinary serde struct with
//! `deny_unknown_fields` and its defaults; it implements [`KindTable`] and the section's
//! trait (`ModelKind`, `OptimizerKind`, ...) that builds the library object.
//!
//! serde reads such an enum by buffering the table, picking the variant by `kind` and handing
//! the other keys to the variant's struct. Its messages then point at the section's header
//! and say neither which kinds a field belongs to nor which kinds exist, so when parsing
//! fails [`explain`] looks at the document again: an unknown or missing `kind`, a field of
//! another kind and a missing required field become [`Error::InvalidConfig`] naming the
//! dotted field; anything else [`locate`] re-reads with the kind's struct straight from the
//! document, so that toml's message points at the offending line.

use std::marker::PhantomData;

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{not_for_kind, Error};

/// The key that names a section's kind.
pub(crate) const TAG: &str = "kind";

/// The TOML table of one kind: what the registry needs to explain a rejected table.
pub(crate) trait KindTable: Serialize + DeserializeOwned {
    /// Fields without a default, each with what it must hold (for the message when missing).
    const REQUIRED: &'static [(&'static str, &'static str)] = &[];

    /// A precise error for a table (with its `kind` key) whose fields are all known to this
    /// kind but that serde rejects for a rule of the kind itself; `None` to let toml's message
    /// stand.
    fn explain(_table: &toml::Table) -> Option<Error> {
        None
    }
}

/// One kind of a section, as registered by [`kinds!`].
pub(crate) struct Entry {
    /// The name written by `to_toml`.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// The names of the kind's fields.
    fields: fn() -> &'static [&'static str],
    /// See [`KindTable::REQUIRED`].
    required: &'static [(&'static str, &'static str)],
    /// See [`KindTable::explain`].
    explain: fn(&toml::Table) -> Option<Error>,
    /// Deserialize the kind's struct from the table at a path of a document.
    probe: fn(&str, &[&str]) -> Result<(), toml::de::Error>,
}

impl Entry {
    /// The entry of kind `name` (with `aliases`) whose fields are the struct `T`.
    pub const fn of<T: KindTable>(name: &'static str, aliases: &'static [&'static str]) -> Self {
        Entry {
            name,
            aliases,
            fields: names::<T>,
            required: T::REQUIRED,
            explain: T::explain,
            probe: probe::<T>,
        }
    }

    /// The names of the kind's fields.
    pub fn fields(&self) -> &'static [&'static str] {
        (self.fields)()
    }

    /// See [`KindTable::REQUIRED`].
    pub fn required(&self) -> &'static [(&'static str, &'static str)] {
        self.required
    }

    /// Deserialize the kind's struct from the table at `path` (dotted) of the document `text`.
    pub fn probe(&self, text: &str, path: &str) -> Result<(), toml::de::Error> {
        (self.probe)(text, &path.split('.').collect::<Vec<_>>())
    }

    fn answers_to(&self, written: &str) -> bool {
        self.name == written || self.aliases.contains(&written)
    }

    /// `` `heavy_ball` (or `momentum`) ``.
    fn describe(&self) -> String {
        let mut s = format!("`{}`", self.name);
        if !self.aliases.is_empty() {
            let aliases: Vec<String> = self.aliases.iter().map(|a| format!("`{a}`")).collect();
            s += &format!(" (or {})", aliases.join(", "));
        }
        s
    }
}

/// A section: the dotted path of its table and its kinds.
pub(crate) struct Section {
    /// E.g. `optimizer.schedule`.
    pub path: &'static str,
    /// The kinds, in the order the messages list them.
    pub kinds: &'static [Entry],
}

impl Section {
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// `` one of `sgd`, `heavy_ball` (or `momentum`), ... ``
    pub fn one_of(&self) -> String {
        format!("one of {}", list(self.kinds.iter()))
    }

    /// The section's table in `root`, if there is one.
    fn table<'a>(&self, root: &'a toml::Table) -> Option<&'a toml::Table> {
        self.path
            .split('.')
            .try_fold(root, |t, key| t.get(key)?.as_table())
    }

    fn entry(&self, table: &toml::Table) -> Option<&'static Entry> {
        let written = table.get(TAG)?.as_str()?;
        self.kinds.iter().find(|k| k.answers_to(written))
    }

    /// The first rule of the registry that `table` breaks.
    fn check(&self, table: &toml::Table) -> Option<Error> {
        let written = match table.get(TAG) {
            None => return Some(Error::invalid(self.field(TAG), "missing", self.one_of())),
            Some(toml::Value::String(s)) => s.as_str(),
            // Not a string: toml's message says so.
            Some(_) => return None,
        };
        let Some(entry) = self.entry(table) else {
            return Some(Error::invalid(self.field(TAG), written, self.one_of()));
        };
        let own = entry.fields();
        for key in table.keys() {
            if key == TAG || own.contains(&key.as_str()) {
                continue;
            }
            let owners: Vec<&Entry> = self
                .kinds
                .iter()
                .filter(|k| k.fields().contains(&key.as_str()))
                .collect();
            // A field of no kind at all is left to serde's "unknown field" message.
            if !owners.is_empty() {
                return Some(not_for_kind(
                    &self.field(key),
                    written,
                    &list(owners.into_iter()),
                ));
            }
        }
        for (name, allowed) in entry.required() {
            if !table.contains_key(*name) {
                return Some(Error::invalid(self.field(name), "missing", *allowed));
            }
        }
        (entry.explain)(table)
    }
}

fn list<'a>(kinds: impl Iterator<Item = &'a Entry>) -> String {
    kinds.map(Entry::describe).collect::<Vec<_>>().join(", ")
}

/// The [`Error::InvalidConfig`] for the first registry rule that a document breaks: an unknown
/// or missing `kind`, a field of another kind, a missing required field, or a rule of the kind
/// itself ([`KindTable::explain`]). `None` if the document is not TOML or breaks none of them.
pub(crate) fn explain(text: &str, sections: &[&Section]) -> Option<Error> {
    let root: toml::Table = text.parse().ok()?;
    sections.iter().find_map(|s| s.check(s.table(&root)?))
}

/// toml's error for the first section (inner sections first) whose kind's struct rejects its
/// table, read straight from the document so that the error points at the offending key or
/// value (the enum's buffered read points at the section's header only).
pub(crate) fn locate(text: &str, sections: &[&Section]) -> Option<toml::de::Error> {
    let root: toml::Table = text.parse().ok()?;
    let mut inner_first = sections.to_vec();
    inner_first.sort_by_key(|s| std::cmp::Reverse(s.path.matches('.').count()));
    inner_first.iter().find_map(|s| {
        let entry = s.entry(s.table(&root)?)?;
        entry.probe(text, s.path).err()
    })
}

/// The names that serde's derived `Deserialize` of `T` expects: the fields of a struct (for
/// one read through `#[serde(try_from)]`, those of the struct it is read as) or the variants
/// of an enum of names.
fn names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // The call only records the names: it always fails.
    let _ = T::deserialize(Names(&mut names));
    names
}

/// The error for the value of `key` in `table`, a string read as the enum of names `T` (e.g.
/// `profile`), if it is none of them: the dotted `field`, the value and the names.
pub(crate) fn check_name<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    field: &str,
) -> Option<Error> {
    let value = table.get(key)?.as_str()?;
    if names::<T>().contains(&value) {
        return None;
    }
    let quoted: Vec<String> = names::<T>().iter().map(|n| format!("`{n}`")).collect();
    let allowed = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    };
    Some(Error::invalid(field, value, allowed))
}

/// A deserializer that records the field names a struct asks for (or the variant names an
/// enum asks for), and fails.
struct Names<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Names<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = variants;
        Err(de::Error::custom("only the variant names are read"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("neither a struct nor an enum"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

/// Deserialize `T` from the table at `path` of the TOML document `text`, without its `kind`.
fn probe<T: DeserializeOwned>(text: &str, path: &[&str]) -> Result<(), toml::de::Error> {
    AtPath::<T> {
        path,
        target: PhantomData,
    }
    .deserialize(toml::Deserializer::parse(text)?)
}

/// Walks down the tables of `path` and reads the last one as `T`, skipping the other keys.
struct AtPath<'p, T> {
    path: &'p [&'p str],
    target: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AtPath<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AtPath<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((head, rest)) = self.path.split_first() else {
            T::deserialize(de::value::MapAccessDeserializer::new(WithoutTag(map)))?;
            return Ok(());
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == *head {
                map.next_value_seed(AtPath::<T> {
                    path: rest,
                    target: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A table's entries without its `kind`.
struct WithoutTag<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutTag<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            match self.0.next_key::<String>()? {
                None => return Ok(None),
                Some(key) if key == TAG => {
                    self.0.next_value::<IgnoredAny>()?;
                }
                Some(key) => {
                    return match seed.deserialize(StringDeserializer::<A::Error>::new(key)) {
                        Ok(field) => Ok(Some(field)),
                        // An unknown field: report it from its value, so that toml points at
                        // the field's line rather than at the section's header.
                        Err(e) => match self.0.next_value_seed(Fail(e.to_string()))? {},
                    };
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// A value that fails with the given message.
struct Fail(String);

impl<'de> DeserializeSeed<'de> for Fail {
    type Value = std::convert::Infallible;

    fn deserialize<D: Deserializer<'de>>(self, _deserializer: D) -> Result<Self::Value, D::Error> {
        Err(de::Error::custom(self.0))
    }
}

/// Declare a section: an internally tagged enum with one variant per kind, one line each:
///
/// ```text
/// kinds! {
///     /// docs
///     pub enum OptimizerConfig in "optimizer" as dyn OptimizerKind {
///         /// docs
///         "heavy_ball" | "momentum" => HeavyBall(HeavyBallConfig),
///     }
/// }
/// ```
///
/// The enum reads and writes `kind = "<name>"` (the aliases are read too) and gets `get` /
/// `get_mut` (the variant's struct as the section's trait object), `kind` (its name),
/// `From` each struct, and `SECTION` (the registry entry of [`explain`] and [`locate`]).
macro_rules! kinds {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $path:literal as $iface:ty {
            $(
                $(#[$vmeta:meta])*
                $kind:literal $(| $alias:literal)* => $variant:ident($config:ty),
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(tag = "kind")]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $kind $(, alias = $alias)*)]
                $variant($config),
            )+
        }

        impl $name {
            /// The registry of the section's kinds.
            pub(crate) const SECTION: $crate::config::registry::Section =
                $crate::config::registry::Section {
                    path: $path,
                    kinds: &[$(
                        $crate::config::registry::Entry::of::<$config>($kind, &[$($alias),*]),
                    )+],
                };

            /// The kind's configuration.
            pub fn get(&self) -> &$iface {
                match self {
                    $(Self::$variant(c) => c,)+
                }
            }

            /// The kind's configuration, to change it.
            pub fn get_mut(&mut self) -> &mut $iface {
                match self {
                    $(Self::$variant(c) => c,)+
                }
            }

            /// The kind's name (as `to_toml` writes it).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)+
                }
            }
        }

        $(
            impl From<$config> for $name {
                fn from(c: $config) -> Self {
                    Self::$variant(c)
                }
            }
        )+
    };
}
pub(crate) use kinds;
