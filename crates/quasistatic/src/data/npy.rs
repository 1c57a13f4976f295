//! NumPy files: `.npy` arrays (format versions 1.0, 2.0 and 3.0, as `numpy.save` writes them)
//! and `.npz` archives of them (`numpy.savez`, stored, and `numpy.savez_compressed`,
//! deflated).
//!
//! The `.npy` header is read here: a magic string, the format version, and a Python dict
//! literal with three keys, `descr` (the dtype), `fortran_order` and `shape`. Element types
//! read: `float64` and `float32` (exact), and the signed and unsigned integers of 1, 2, 4 and
//! 8 bytes (converted to `f64`: exact up to `2^53` in magnitude), little- or big-endian.
//! Everything else (booleans, half floats, complex numbers, strings, objects, structured
//! dtypes) is rejected with the dtype found and the dtypes allowed. A Fortran-ordered array is
//! transposed into row-major order, so `values` always reads `a[i, j]` at `i * cols + j`.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::Error;

/// The element types read, as the message of a rejected dtype lists them.
pub const DTYPES_ALLOWED: &str =
    "float64, float32, int8/16/32/64 or uint8/16/32/64 (`<f8`, `<f4`, `<i1`..`<i8`, `<u1`..`<u8`, either byte order)";

/// A NumPy array read as `f64`: its shape and its elements in row-major (C) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape, e.g. `[rows, cols]` for a 2-D array, `[n]` for a 1-D one, `[]` for a scalar.
    pub shape: Vec<usize>,
    /// The elements, row-major, `shape.iter().product()` of them.
    pub values: Vec<f64>,
    /// The dtype as written in the file (e.g. `<f4`).
    pub dtype: String,
}

/// An element type that can be read.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Float,
    Int,
    Uint,
}

/// Read a `.npy` file.
///
/// # Errors
///
/// [`Error::Data`] naming the file: missing or unreadable, or any problem of [`parse_npy`].
pub fn read_npy(path: &Path) -> Result<NpyArray, Error> {
    let bytes = std::fs::read(path).map_err(|e| read_error(path, &e))?;
    parse_npy(&bytes).map_err(|message| Error::Data {
        path: path.to_path_buf(),
        message,
    })
}

/// Read the arrays `names` of a `.npz` archive (each stored as `<name>.npy`), in that order.
///
/// # Errors
///
/// [`Error::Data`] naming the archive: missing or unreadable, not a zip archive, no array of
/// one of the names (the message lists the names present), or a problem of [`parse_npy`]
/// (the message names the array).
pub fn read_npz(path: &Path, names: &[&str]) -> Result<Vec<NpyArray>, Error> {
    let fail = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(path, &e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| fail(format!("not a readable .npz (zip) archive: {e}")))?;
    let mut present: Vec<String> = archive
        .file_names_raw()
        .map(|raw| {
            let n = String::from_utf8_lossy(raw);
            n.strip_suffix(".npy").unwrap_or(&n).to_string()
        })
        .collect();
    present.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let entry = format!("{name}.npy");
        let mut member = match archive.by_name(&entry) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(fail(format!(
                    "no array named `{name}`; the arrays are: {}",
                    if present.is_empty() {
                        "(none)".to_string()
                    } else {
                        present.join(", ")
                    }
                )))
            }
            Err(e) => return Err(fail(format!("array `{name}`: cannot read it: {e}"))),
        };
        let mut bytes = Vec::new();
        member
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("array `{name}`: cannot read it: {e}")))?;
        out.push(parse_npy(&bytes).map_err(|m| fail(format!("array `{name}`: {m}")))?);
    }
    Ok(out)
}

fn read_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read file: {e}"),
        },
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parse the bytes of a `.npy` file. The message of an error says what is wrong (format
/// version, header, dtype found and dtypes allowed, data length).
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.is_empty() {
        return Err("file is empty (expected a .npy array)".into());
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(
            "not a .npy file (it does not start with the magic string `\\x93NUMPY`)".into(),
        );
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() < 12 => return Err("the .npy header is cut short".into()),
        2 | 3 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(format!(
                ".npy format version {major}.{minor} is not supported (1.0, 2.0, 3.0 are)"
            ))
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("the .npy header is cut short")?;
    let header =
        std::str::from_utf8(&bytes[start..end]).map_err(|_| "the .npy header is not text")?;
    let header = parse_header(header)?;
    let (kind, size, little) = dtype(&header.descr)?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape is too large")?;
    let data = &bytes[end..];
    let expected = count
        .checked_mul(size)
        .ok_or("the .npy shape is too large")?;
    if data.len() != expected {
        return Err(format!(
            "the data has {} bytes, expected {expected} for shape {:?} of `{}`",
            data.len(),
            header.shape,
            header.descr
        ));
    }
    let mut values: Vec<f64> = data
        .chunks_exact(size)
        .map(|c| element(c, kind, little))
        .collect();
    if header.fortran_order && header.shape.len() >= 2 {
        values = c_order(&values, &header.shape);
    }
    Ok(NpyArray {
        shape: header.shape,
        values,
        dtype: header.descr,
    })
}

/// The row-major order of the elements `values` of a column-major array of `shape`.
fn c_order(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    // Fortran strides: dimension k steps by the product of the earlier dimensions.
    let mut index = vec![0usize; shape.len()];
    for slot in out.iter_mut() {
        let mut offset = 0;
        let mut stride = 1;
        for (k, &i) in index.iter().enumerate() {
            offset += i * stride;
            stride *= shape[k];
        }
        *slot = values[offset];
        // Next C-order index: the last dimension fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    out
}

/// (kind, bytes per element, little-endian) of a `descr`, or the message rejecting it.
fn dtype(descr: &str) -> Result<(Kind, usize, bool), String> {
    let reject = || format!("dtype `{descr}` is not supported; allowed: {DTYPES_ALLOWED}");
    let mut chars = descr.chars();
    let little = match chars.next() {
        Some('<') => true,
        Some('>') => false,
        Some('|') | Some('=') => cfg!(target_endian = "little"),
        _ => return Err(reject()),
    };
    let kind = match chars.next() {
        Some('f') => Kind::Float,
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        _ => return Err(reject()),
    };
    let size: usize = chars.as_str().parse().map_err(|_| reject())?;
    match (kind, size) {
        (Kind::Float, 4 | 8) | (Kind::Int | Kind::Uint, 1 | 2 | 4 | 8) => Ok((kind, size, little)),
        _ => Err(reject()),
    }
}

/// One element of `size = c.len()` bytes as `f64`.
fn element(c: &[u8], kind: Kind, little: bool) -> f64 {
    let mut b = [0u8; 8];
    let n = c.len();
    if little {
        b[..n].copy_from_slice(c);
    } else {
        for (k, &byte) in c.iter().rev().enumerate() {
            b[k] = byte;
        }
    }
    // `b` now holds the value little-endian in its first `n` bytes.
    let raw = u64::from_le_bytes(b);
    match (kind, n) {
        (Kind::Float, 4) => f32::from_bits(raw as u32) as f64,
        (Kind::Float, _) => f64::from_bits(raw),
        (Kind::Uint, _) => raw as f64,
        (Kind::Int, _) => {
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            (((raw << shift) as i64) >> shift) as f64
        }
    }
}

/// The three keys of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parse the header's dict literal, e.g. `{'descr': '<f8', 'fortran_order': False, 'shape':
/// (3, 4), }`.
fn parse_header(text: &str) -> Result<Header, String> {
    let bad = |what: &str| format!("the .npy header `{}` is malformed: {what}", text.trim());
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.ws();
    if !p.eat(b'{') {
        return Err(bad("expected `{`"));
    }
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        p.ws();
        if !p.eat(b':') {
            return Err(bad("expected `:` after a key"));
        }
        p.ws();
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err(format!(
                        "structured dtypes (records) are not supported; allowed: {DTYPES_ALLOWED}"
                    ));
                }
                descr = Some(p.string().ok_or_else(|| bad("`descr` is not a string"))?);
            }
            "fortran_order" => {
                fortran = Some(if p.word("True") {
                    true
                } else if p.word("False") {
                    false
                } else {
                    return Err(bad("`fortran_order` is neither True nor False"));
                });
            }
            "shape" => shape = Some(p.tuple().ok_or_else(|| bad("`shape` is not a tuple"))?),
            _ => return Err(bad(&format!("unknown key `{key}`"))),
        }
        p.ws();
        if p.eat(b'}') {
            break;
        }
        if !p.eat(b',') {
            return Err(bad("expected `,` or `}`"));
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err(bad(
            "it needs the keys `descr`, `fortran_order` and `shape`",
        )),
    }
}

/// A cursor over the header's bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn word(&mut self, w: &str) -> bool {
        let hit = self.s[self.i..].starts_with(w.as_bytes());
        if hit {
            self.i += w.len();
        }
        hit
    }

    /// A string in single or double quotes (no escapes: dtypes and keys have none).
    fn string(&mut self) -> Option<String> {
        let quote = self.peek().filter(|&c| c == b'\'' || c == b'"')?;
        self.i += 1;
        let start = self.i;
        while self.peek()? != quote {
            self.i += 1;
        }
        let s = std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .to_string();
        self.i += 1;
        Some(s)
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(3, 4)`.
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Some(out);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // `L` suffixes of Python 2 headers.
            let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            out.push(digits.parse().ok()?);
            self.eat(b'L');
            self.ws();
            if self.eat(b')') {
                return Some(out);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }
}

/// The bytes of a `.npy` file (format 1.0, little-endian `float64`, C order) holding `values`
/// with `shape` (`values.len()` must be the product of `shape`). The header is padded with
/// spaces to a multiple of 64 bytes, as `numpy.save` does, so `numpy.load` reads it.
pub fn npy_bytes(shape: &[usize], values: &[f64]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), values.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write a `.npy` file of `float64` values with `shape` (see [`npy_bytes`]).
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f64]) -> Result<(), Error> {
    std::fs::write(path, npy_bytes(shape, values))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Write a `.npz` archive (stored, uncompressed, as `numpy.savez` does) of named `float64`
/// arrays `(name, shape, values)`. The archive's bytes depend on the arrays only (every entry
/// carries the zip format's earliest timestamp), so a file written twice is the same file.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written.
pub fn write_npz(path: &Path, arrays: &[(&str, &[usize], &[f64])]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::io(format!("cannot write {}", path.display()), e);
    let zip_io = |e: zip::result::ZipError| io(std::io::Error::other(e));
    let file = std::fs::File::create(path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for (name, shape, values) in arrays {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(zip_io)?;
        zip.write_all(&npy_bytes(shape, values)).map_err(io)?;
    }
    zip.finish().map_err(zip_io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file written by hand after the format's description (NEP 1): header dict,
    /// padding, then the raw elements.
    fn handmade(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let order = if fortran { "True" } else { "False" };
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn written_files_have_numpys_layout() {
        let bytes = npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        // numpy.save(np.array([[1, 2, 3], [4, 5, 6.5]])) writes exactly this header.
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 118);
        assert_eq!(&bytes[10..10 + header.len()], header.as_bytes());
        assert_eq!(bytes[127], b'\n');
        assert_eq!(bytes.len(), 128 + 48);
        assert_eq!(&bytes[128 + 40..], &6.5f64.to_le_bytes());
        let one = npy_bytes(&[4], &[0.0; 4]);
        assert!(std::str::from_utf8(&one[10..64])
            .unwrap()
            .contains("'shape': (4,)"));
        assert_eq!(one.len() % 8, 0);
    }

    #[test]
    fn dtypes_and_orders_are_read_exactly() {
        let f4: Vec<u8> = [1.5f32, -2.25, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_npy(&handmade("<f4", false, "(2, 2)", &f4)).unwrap();
        assert_eq!(
            (a.shape.as_slice(), a.values.as_slice()),
            (&[2, 2][..], &[1.5, -2.25, 3.0, 4.0][..])
        );
        // Column-major [[1, 2, 3], [4, 5, 6]] is stored 1, 4, 2, 5, 3, 6.
        let f8be: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let b = parse_npy(&handmade(">f8", true, "(2, 3)", &f8be)).unwrap();
        assert_eq!(b.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let i2: Vec<u8> = [-3i16, 700].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&handmade("<i2", false, "(2,)", &i2))
                .unwrap()
                .values,
            [-3.0, 700.0]
        );
        let i8be: Vec<u8> = [-5i64].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            parse_npy(&handmade(">i8", false, "(1,)", &i8be))
                .unwrap()
                .values,
            [-5.0]
        );
        let u1 = parse_npy(&handmade("|u1", false, "(3,)", &[0, 7, 255])).unwrap();
        assert_eq!(u1.values, [0.0, 7.0, 255.0]);
        let i1 = parse_npy(&handmade("|i1", false, "(2,)", &[0xff, 0x80])).unwrap();
        assert_eq!(i1.values, [-1.0, -128.0]);
        let u4: Vec<u8> = 4_000_000_000u32.to_le_bytes().to_vec();
        assert_eq!(
            parse_npy(&handmade("<u4", false, "(1,)", &u4))
                .unwrap()
                .values,
            [4e9]
        );
        // Version 2.0: a four-byte header length.
        let mut v2 = npy_bytes(&[1], &[2.5]);
        let header = v2.split_off(10);
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u32 - 8).to_le_bytes());
        bytes.extend_from_slice(&header);
        assert_eq!(parse_npy(&bytes).unwrap().values, [2.5]);
    }

    #[test]
    fn bad_files_are_named_not_panicked_on() {
        let err = |b: &[u8]| parse_npy(b).unwrap_err();
        assert!(err(b"").contains("empty"));
        assert!(err(b"a,b\n1,2\n").contains("not a .npy file"));
        let bool_array = handmade("|b1", false, "(2,)", &[0, 1]);
        let m = err(&bool_array);
        assert!(m.contains("`|b1`") && m.contains("float64, float32"), "{m}");
        let m = err(&handmade("<c16", false, "(1,)", &[0; 16]));
        assert!(m.contains("`<c16`") && m.contains("allowed"), "{m}");
        assert!(err(&handmade("<f2", false, "(1,)", &[0; 2])).contains("`<f2`"));
        let m = err(&handmade("<f8", false, "(2, 2)", &[0; 24]));
        assert!(m.contains("24 bytes, expected 32"), "{m}");
        let mut structured = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }\n";
        structured.extend_from_slice(&(h.len() as u16).to_le_bytes());
        structured.extend_from_slice(h.as_bytes());
        assert!(err(&structured).contains("structured"));
        let m = err(&b"\x93NUMPY\x09\x00xx"[..]);
        assert!(m.contains("version 9.0"), "{m}");
        // Every truncation of a valid file is an error, never a panic.
        let good = npy_bytes(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        for cut in 0..good.len() {
            assert!(parse_npy(&good[..cut]).is_err(), "cut at {cut}");
        }
        // So is any single corrupted header byte (some corruptions stay valid: only no panic).
        for k in 0..128 {
            let mut b = good.clone();
            b[k] ^= 0x5a;
            let _ = parse_npy(&b);
        }
    }
}
