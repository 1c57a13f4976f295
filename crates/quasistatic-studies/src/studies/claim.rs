//! Claims: what a study checked, under a typed id, with the measured number, its interval, the
//! expectation and a verdict.
//!
//! A claim's id ([`ClaimId`]) is a value of a per-study enum; it serialises to a stable string
//! (`closeness.valley_label_sgd.gap_shrinks`, `momentum_scaling.collapse`, ...) that
//! `claims.json` carries, and it owns the claim's statement in words. Code and tests find a
//! claim by its id ([`find`]), never by its prose.

use std::fmt;

use serde::{Serialize, Serializer};

use super::{closeness, flatness, momentum, rotation};

/// The studies, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Study {
    /// Study 1: derived against true dynamics, gaps shrinking with eta.
    Closeness,
    /// Study 2: the heavy-ball scaling rule and where it breaks.
    MomentumScaling,
    /// Study 3: Adam is not rotation invariant, SGD is.
    AdamRotation,
    /// Study 4: which flatness SGD and Adam seek.
    Flatness,
}

impl Study {
    /// Every study, in report order.
    pub const ALL: [Study; 4] = [
        Study::Closeness,
        Study::MomentumScaling,
        Study::AdamRotation,
        Study::Flatness,
    ];

    /// The study's folder in a report (also the first part of its claim ids and the name
    /// `--only` takes).
    pub fn folder(self) -> &'static str {
        match self {
            Study::Closeness => "closeness",
            Study::MomentumScaling => "momentum_scaling",
            Study::AdamRotation => "adam_rotation",
            Study::Flatness => "flatness",
        }
    }

    /// The study with this folder name.
    pub fn from_folder(name: &str) -> Option<Study> {
        Study::ALL.into_iter().find(|s| s.folder() == name)
    }
}

impl fmt::Display for Study {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// The outcome of checking a claim.
///
/// The criterion of every claim decides `Supported` or not; a claim that is not supported is
/// `Inconclusive` when the failure lies within the Monte-Carlo error (the point estimate
/// satisfies the criterion but its 95% interval does not, or the ensemble's noise floor is
/// above the tolerance), `Contradicted` when it does not, and `Failed` when the measurement
/// itself could not be made (an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The measurement meets the criterion.
    Supported,
    /// The measurement fails the criterion beyond its Monte-Carlo error.
    Contradicted,
    /// The measurement fails the criterion within its Monte-Carlo error: more trajectories
    /// are needed to tell.
    Inconclusive,
    /// No measurement (the study or the case failed; the error is in the claim's detail).
    Failed,
}

impl Verdict {
    /// Whether the claim is supported.
    pub fn is_supported(self) -> bool {
        self == Verdict::Supported
    }

    /// Words for the report.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "**contradicted**",
            Verdict::Inconclusive => "**inconclusive** (Monte-Carlo)",
            Verdict::Failed => "**failed**",
        }
    }

    /// `Supported` if `holds`; otherwise `Inconclusive` if `within_noise`, else
    /// `Contradicted`.
    pub fn decide(holds: bool, within_noise: bool) -> Verdict {
        match (holds, within_noise) {
            (true, _) => Verdict::Supported,
            (false, true) => Verdict::Inconclusive,
            (false, false) => Verdict::Contradicted,
        }
    }

    /// The verdict of the criterion "gap `value` <= `tolerance`", applied as written to the
    /// point estimate, for a gap with Monte-Carlo noise floor `floor` (the 95% half-width below
    /// which a gap cannot be told from sampling error) and 95% interval lower end `low`:
    ///
    /// - `Failed` when `value` is not a number (nothing was measured);
    /// - `Inconclusive` when `floor >= tolerance` (or is not a number): the ensemble cannot
    ///   resolve the tolerance, whatever the point estimate says;
    /// - `Supported` when `value <= tolerance`;
    /// - `Inconclusive` when `value > tolerance` but `low <= tolerance` (the interval
    ///   straddles the tolerance);
    /// - `Contradicted` otherwise (`low > tolerance`).
    pub fn of_gap(value: f64, low: f64, tolerance: f64, floor: f64) -> Verdict {
        if value.is_nan() {
            Verdict::Failed
        } else if floor.is_nan() || floor >= tolerance {
            Verdict::Inconclusive
        } else if value <= tolerance {
            Verdict::Supported
        } else if low <= tolerance {
            Verdict::Inconclusive
        } else {
            Verdict::Contradicted
        }
    }

    /// The verdict of a criterion made of several parts that must all hold: `Failed` if any
    /// part failed, else `Contradicted` if any is, else `Inconclusive` if any is, else
    /// `Supported` (also for no part).
    pub fn all(parts: &[Verdict]) -> Verdict {
        [
            Verdict::Failed,
            Verdict::Contradicted,
            Verdict::Inconclusive,
        ]
        .into_iter()
        .find(|v| parts.contains(v))
        .unwrap_or(Verdict::Supported)
    }
}

/// A 95% interval of a measured number.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl Interval {
    /// `value +- half_width`.
    pub fn around(value: f64, half_width: f64) -> Self {
        Interval {
            low: value - half_width,
            high: value + half_width,
        }
    }
}

/// The typed id of a claim.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClaimId {
    /// A claim of the closeness study.
    Closeness(closeness::ClosenessClaim),
    /// A claim of the momentum-scaling study.
    Momentum(momentum::MomentumClaim),
    /// A claim of the rotation study.
    Rotation(rotation::RotationClaim),
    /// A claim of the flatness study.
    Flatness(flatness::FlatnessClaim),
    /// The study ran to the end (reported, as failed, only when it did not).
    StudyRan(Study),
}

impl ClaimId {
    /// The study the claim belongs to.
    pub fn study(&self) -> Study {
        match self {
            ClaimId::Closeness(_) => Study::Closeness,
            ClaimId::Momentum(_) => Study::MomentumScaling,
            ClaimId::Rotation(_) => Study::AdamRotation,
            ClaimId::Flatness(_) => Study::Flatness,
            ClaimId::StudyRan(s) => *s,
        }
    }

    /// The stable string id: `<study folder>.<claim>` (with the case in between where a
    /// claim is made per case), lower case, dot separated.
    pub fn key(&self) -> String {
        let rest = match self {
            ClaimId::Closeness(c) => c.key(),
            ClaimId::Momentum(c) => c.key(),
            ClaimId::Rotation(c) => c.key(),
            ClaimId::Flatness(c) => c.key(),
            ClaimId::StudyRan(_) => "study_ran".to_string(),
        };
        format!("{}.{rest}", self.study().folder())
    }

    /// What is claimed, in words.
    pub fn statement(&self) -> String {
        match self {
            ClaimId::Closeness(c) => c.statement(),
            ClaimId::Momentum(c) => c.statement(),
            ClaimId::Rotation(c) => c.statement(),
            ClaimId::Flatness(c) => c.statement(),
            ClaimId::StudyRan(_) => "the study ran".to_string(),
        }
    }
}

impl fmt::Display for ClaimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for ClaimId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

/// One checked claim.
#[derive(Clone, Debug)]
pub struct Claim {
    /// Which claim.
    pub id: ClaimId,
    /// The number the verdict rests on (NaN when there is none, e.g. a failed measurement).
    pub value: f64,
    /// Its 95% interval, when it has one.
    pub interval: Option<Interval>,
    /// The tolerance the criterion compares `value` with, when it is a single threshold.
    pub tolerance: Option<f64>,
    /// The Monte-Carlo noise floor of `value` (95% half-width of sampling error, in the units
    /// of `value`), when the criterion uses one: above the tolerance the claim is
    /// inconclusive.
    pub floor: Option<f64>,
    /// What the theory expects, with the criterion's thresholds.
    pub expected: String,
    /// The outcome.
    pub verdict: Verdict,
    /// Everything measured for the claim, in words (the report's "measured" column).
    pub detail: String,
}

impl Claim {
    /// Whether the claim is supported.
    pub fn holds(&self) -> bool {
        self.verdict.is_supported()
    }

    /// The claim that a study ran, failed with `error`.
    pub fn study_failed(study: Study, error: &str) -> Self {
        Claim {
            id: ClaimId::StudyRan(study),
            value: f64::NAN,
            interval: None,
            tolerance: None,
            floor: None,
            expected: "success".into(),
            verdict: Verdict::Failed,
            detail: format!("error: {error}"),
        }
    }
}

/// Serialised with its id as the stable string, its study and its statement.
impl Serialize for Claim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Record<'a> {
            id: &'a ClaimId,
            study: Study,
            statement: String,
            value: f64,
            interval: Option<Interval>,
            tolerance: Option<f64>,
            floor: Option<f64>,
            expected: &'a str,
            verdict: Verdict,
            detail: &'a str,
        }
        Record {
            id: &self.id,
            study: self.id.study(),
            statement: self.id.statement(),
            value: self.value,
            interval: self.interval,
            tolerance: self.tolerance,
            floor: self.floor,
            expected: &self.expected,
            verdict: self.verdict,
            detail: &self.detail,
        }
        .serialize(s)
    }
}

/// The claim with id `id`, if `claims` has it.
pub fn find<'a>(claims: &'a [Claim], id: &ClaimId) -> Option<&'a Claim> {
    claims.iter().find(|c| &c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use closeness::{Case, ClosenessClaim, OptimizerKind, Setting};
    use flatness::FlatnessClaim;
    use momentum::MomentumClaim;
    use rotation::RotationClaim;

    /// Every claim id the studies can produce.
    fn all_ids() -> Vec<ClaimId> {
        let mut ids: Vec<ClaimId> = Vec::new();
        for setting in Setting::ALL {
            for optimizer in OptimizerKind::ALL {
                ids.push(
                    ClosenessClaim::GapShrinks {
                        case: Case { setting, optimizer },
                    }
                    .into(),
                );
            }
        }
        ids.push(ClosenessClaim::MedianSlope.into());
        ids.extend(
            [
                MomentumClaim::Collapse,
                MomentumClaim::DestinationUnchanged,
                MomentumClaim::IterationsShrink,
                MomentumClaim::ExactEquilibriumPredictsLevel,
                MomentumClaim::RuleBreaksBeforeBound,
            ]
            .map(ClaimId::from),
        );
        ids.extend(
            [
                RotationClaim::SgdAngleInvariant,
                RotationClaim::AdamAngleDependent,
                RotationClaim::AdamAgreesGeneric,
                RotationClaim::AdamAgreesAxisAligned,
                RotationClaim::AdamNearAxisLeastAccurate,
                RotationClaim::SgdAgrees,
                RotationClaim::SgdDimensionInvariant,
                RotationClaim::AdamRotatedSlower,
            ]
            .map(ClaimId::from),
        );
        for optimizer in flatness::OptimizerKind::ALL {
            ids.extend(
                [
                    FlatnessClaim::RegulariserDecreases { optimizer },
                    FlatnessClaim::DerivedDefined { optimizer },
                    FlatnessClaim::DerivedAgrees { optimizer },
                ]
                .map(ClaimId::from),
            );
        }
        ids.extend(
            [
                FlatnessClaim::DriftAlongRegularisers,
                FlatnessClaim::SolutionsDiffer,
                FlatnessClaim::AdamSparser,
                FlatnessClaim::AdamPrefersSqrtDiag,
            ]
            .map(ClaimId::from),
        );
        ids.extend(Study::ALL.map(ClaimId::StudyRan));
        ids
    }

    /// String ids are distinct, lower-case dotted words, start with their study's folder,
    /// and a few are pinned (they are what `claims.json` consumers match on).
    #[test]
    fn claim_ids_are_stable_and_distinct() {
        let ids = all_ids();
        assert_eq!(ids.len(), 24 + 1 + 5 + 8 + 10 + 4);
        let keys: std::collections::BTreeSet<String> = ids.iter().map(|i| i.key()).collect();
        assert_eq!(keys.len(), ids.len());
        for id in &ids {
            let key = id.key();
            assert!(
                key.starts_with(&format!("{}.", id.study().folder())),
                "{key}"
            );
            assert!(
                key.split('.').all(|part| !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
                "{key}"
            );
            assert!(!id.statement().is_empty());
        }
        let pinned = [
            (
                ClaimId::from(ClosenessClaim::GapShrinks {
                    case: Case {
                        setting: Setting::ValleyLabel,
                        optimizer: OptimizerKind::Sgd,
                    },
                }),
                "closeness.valley_label_sgd.gap_shrinks",
            ),
            (MomentumClaim::Collapse.into(), "momentum_scaling.collapse"),
            (
                RotationClaim::AdamRotatedSlower.into(),
                "adam_rotation.adam_rotated_slower",
            ),
            (
                FlatnessClaim::RegulariserDecreases {
                    optimizer: flatness::OptimizerKind::Sgd,
                }
                .into(),
                "flatness.sgd.regulariser_decreases",
            ),
            (ClaimId::StudyRan(Study::Flatness), "flatness.study_ran"),
        ];
        for (id, key) in pinned {
            assert_eq!(id.key(), key);
            assert_eq!(id.to_string(), key);
        }
        for s in Study::ALL {
            assert_eq!(Study::from_folder(s.folder()), Some(s));
        }
        assert_eq!(Study::from_folder("momentum"), None);
    }

    /// A claim serialises with its string id, its study, its statement, the verdict in
    /// snake case, the interval (or null) and non-finite values as null.
    #[test]
    fn claim_serialises_with_its_id() {
        let c = Claim {
            id: MomentumClaim::Collapse.into(),
            value: 0.12,
            interval: Some(Interval::around(0.12, 0.05)),
            tolerance: None,
            floor: None,
            expected: "≤ 0.1".into(),
            verdict: Verdict::Inconclusive,
            detail: "largest relative gap 0.120".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["id"], "momentum_scaling.collapse");
        assert_eq!(v["study"], "momentum_scaling");
        assert_eq!(v["statement"], MomentumClaim::Collapse.statement());
        assert_eq!(v["verdict"], "inconclusive");
        assert!((v["interval"]["low"].as_f64().unwrap() - 0.07).abs() < 1e-12);
        assert!(!c.holds());
        let failed = Claim::study_failed(Study::Closeness, "boom");
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["id"], "closeness.study_ran");
        assert_eq!(v["verdict"], "failed");
        assert!(v["value"].is_null() && v["interval"].is_null());
        assert_eq!(v["detail"], "error: boom");
        assert_eq!(Verdict::decide(true, false), Verdict::Supported);
        assert_eq!(Verdict::decide(false, true), Verdict::Inconclusive);
        assert_eq!(Verdict::decide(false, false), Verdict::Contradicted);
    }
}
