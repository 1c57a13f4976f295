//! The fast engine's leaf layer: what the ensemble loops run on, knowing nothing of models,
//! noises, optimizers or runs.
//!
//! - [`lanes`]: [`Lanes`], one `f64` per trajectory of a group of [`LANES`], with element-wise
//!   IEEE arithmetic and the special functions the lane kernels use;
//! - [`batch`]: a trajectory's and a group's batch ([`Batch`], [`LaneBatch`]) and the
//!   coordinate-major group layout;
//! - [`isa`]: the instruction sets the loops are compiled for, picked at run time;
//! - [`rng`]: the counter-keyed random streams `(seed, trajectory, purpose)`;
//! - [`normal`]: `StandardNormal` draws with the ziggurat's common path inlined;
//! - [`streams`]: a group's eight generators as state words, drawn as one AVX-512 vector;
//! - [`registers`]: the register step, small one-sample models' groups held in vector
//!   registers across steps, behind the capabilities below and a [`registers::GroupRecorder`];
//! - [`kernels`]: the capabilities of a model whose group of trajectories is evaluated in one
//!   call ([`LaneKernel`]) or held in registers ([`SmallLaneKernel`]);
//! - [`coordinate`]: the capability of an optimizer whose step acts coordinate by coordinate
//!   ([`CoordinateRule`]), which the engine steps on whole groups.
//!
//! Everything above (`model`, `noise`, `optim`, `simulate`) imports from here; nothing here
//! imports from above (checked by the `layers` test).

pub mod batch;
pub mod coordinate;
pub mod isa;
pub mod kernels;
pub mod lanes;
pub mod normal;
pub mod registers;
pub mod rng;
pub mod streams;

pub use batch::{gather_lane, scatter_lane, Batch, LaneBatch, LaneSlots};
pub use coordinate::{CoordinateFloat, CoordinateRule};
pub use isa::Isa;
pub use kernels::{LaneKernel, SmallLaneKernel};
pub use lanes::{LaneFloat, Lanes, LANES};
pub use normal::{standard_normal_inline, ZigguratTable};
pub use streams::LaneStreams;
