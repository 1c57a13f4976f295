//! Gradient noise models (THEORY.md section 6) and their exact covariances.
//!
//! A noise model turns the full-batch gradient into the stochastic gradient an optimizer
//! sees, `g = grad L(theta) + xi`, and knows `Sigma(theta) = Cov xi` exactly
//! ([`NoiseModel::covariance`]), which the derivation uses. The "real" noises (label noise,
//! mini-batch sampling) are simulated as they happen in training: fresh noisy labels and a
//! fresh batch every step. The Gaussian ones add `xi ~ N(0, Sigma)`.
//!
//! Units: `Sigma` is the covariance of one stochastic gradient (per optimizer step).

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::lanes::Lanes;
use crate::model::{derivatives, gather_lane, scatter_lane, Batch, LaneBatch, Model};
use crate::rng::TrajectoryRng;
use crate::simulate::LANES;

/// A gradient noise model.
#[derive(Clone, Debug, PartialEq)]
pub enum NoiseModel {
    /// No noise: full-batch gradient descent.
    None,
    /// Label noise: every step draws fresh labels `y_i + sigma z_i` and a batch of `batch`
    /// samples without replacement (`None` = full batch, `B = n`). With `sigma = 0` it is pure
    /// mini-batch noise; with `batch < n` it is both combined.
    ///
    /// `Sigma = (n - B) / (B (n - 1)) C + (sigma^2 / (B n)) sum_i grad f_i grad f_i^T`, with the
    /// per-sample gradient covariance `C = (1/n) sum_i r_i^2 grad f_i grad f_i^T - grad L grad L^T`
    /// (`r_i = f_i - y_i`). On an interpolating manifold this is `(sigma^2 / B) H`.
    Label {
        /// Standard deviation of the label noise, `>= 0`.
        sigma: f64,
        /// Batch size `B` in `1..=n`; `None` for the full batch.
        batch: Option<usize>,
    },
    /// Isotropic Gaussian: `Sigma = (sigma^2 / B) I`.
    Isotropic {
        /// Scale, `>= 0`.
        sigma: f64,
        /// Divisor `B >= 1` (1 for none).
        batch: usize,
    },
    /// Hessian-shaped Gaussian: `Sigma = (sigma^2 / B) H(theta)`. Sampling uses the positive
    /// part of `H` (negative eigenvalues, possible off the manifold, are clamped to 0) and
    /// factorises a dense Hessian every step: cost `O(d^3)`, meant for small models.
    Hessian {
        /// Scale, `>= 0`.
        sigma: f64,
        /// Divisor `B >= 1` (1 for none).
        batch: usize,
    },
    /// A fixed covariance matrix given by the user (`d x d`, symmetric positive semi-definite).
    Fixed {
        /// The covariance `Sigma`.
        covariance: DMatrix<f64>,
        /// A factor `F` with `F F^T = Sigma` (symmetric square root).
        factor: DMatrix<f64>,
    },
}

/// Symmetric positive-semidefinite square root (negative eigenvalues clamped to 0).
pub fn psd_sqrt(a: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (a + a.transpose()) * 0.5;
    let eig = sym.symmetric_eigen();
    let mut vals = eig.eigenvalues.clone();
    for v in vals.iter_mut() {
        *v = v.max(0.0).sqrt();
    }
    &eig.eigenvectors * DMatrix::from_diagonal(&vals) * eig.eigenvectors.transpose()
}

impl NoiseModel {
    /// A fixed-covariance noise; the factor is the symmetric square root of `covariance`.
    pub fn fixed(covariance: DMatrix<f64>) -> Self {
        let factor = psd_sqrt(&covariance);
        NoiseModel::Fixed { covariance, factor }
    }

    /// Short name (`none`, `label`, `minibatch`, `isotropic`, `hessian`, `fixed`).
    pub fn name(&self) -> &'static str {
        match self {
            NoiseModel::None => "none",
            NoiseModel::Label { sigma, .. } if *sigma == 0.0 => "minibatch",
            NoiseModel::Label { .. } => "label",
            NoiseModel::Isotropic { .. } => "isotropic",
            NoiseModel::Hessian { .. } => "hessian",
            NoiseModel::Fixed { .. } => "fixed",
        }
    }

    /// Buffers for [`NoiseModel::stochastic_gradient`], sized for `model`.
    pub fn workspace<M: Model>(&self, model: &M) -> NoiseWorkspace {
        let n = model.n_samples();
        NoiseWorkspace {
            permutation: (0..n).collect(),
            shift: vec![0.0; n],
            scratch: vec![0.0; model.scratch_len()],
            z: vec![0.0; model.dim()],
        }
    }

    /// Draw one stochastic gradient at `theta` into `grad` and return the (clean) loss of the
    /// samples used (the training loss for full-batch noises). Allocates nothing, except the
    /// Hessian-shaped noise (dense eigen-decomposition each step).
    #[inline]
    pub fn stochastic_gradient<M: Model>(
        &self,
        model: &M,
        theta: &[f64],
        rng: &mut TrajectoryRng,
        ws: &mut NoiseWorkspace,
        grad: &mut [f64],
    ) -> f64 {
        match self {
            NoiseModel::None => model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch),
            NoiseModel::Label { sigma, batch } => {
                let n = model.n_samples();
                let b = batch.unwrap_or(n);
                let indices = if b < n {
                    // Partial Fisher-Yates: the first b entries are a uniform b-subset.
                    for k in 0..b {
                        let j = rng.random_range(k..n);
                        ws.permutation.swap(k, j);
                    }
                    Some(&ws.permutation[..b])
                } else {
                    None
                };
                let shift = if *sigma > 0.0 {
                    for s in ws.shift[..b].iter_mut() {
                        let z: f64 = rng.sample(StandardNormal);
                        *s = sigma * z;
                    }
                    Some(&ws.shift[..b])
                } else {
                    None
                };
                model.batch_gradient(theta, Batch { indices, shift }, grad, &mut ws.scratch)
            }
            NoiseModel::Isotropic { sigma, batch } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                let scale = sigma / (*batch as f64).sqrt();
                for g in grad.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *g += scale * z;
                }
                loss
            }
            NoiseModel::Hessian { sigma, batch } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                let factor = psd_sqrt(&derivatives::hessian(model, theta));
                let scale = sigma / (*batch as f64).sqrt();
                add_correlated(grad, &factor, scale, rng, &mut ws.z);
                loss
            }
            NoiseModel::Fixed { factor, .. } => {
                let loss = model.batch_gradient(theta, Batch::FULL, grad, &mut ws.scratch);
                add_correlated(grad, factor, 1.0, rng, &mut ws.z);
                loss
            }
        }
    }

    /// The label-noise `sigma` (`0` for no noise) when every stochastic gradient is the full
    /// batch of `n` samples with (possibly) shifted labels: no noise, or label noise with the
    /// full batch. The engine's register-held group step serves exactly these, drawing the
    /// shifts with [`NoiseModel::fill_lane_label_shifts`] and
    /// [`NoiseModel::draw_lane_label_shifts`]. `None` for every other noise.
    pub fn full_batch_label_sigma(&self, n: usize) -> Option<f64> {
        match *self {
            NoiseModel::None => Some(0.0),
            NoiseModel::Label { sigma, batch } if batch.unwrap_or(n) == n => Some(sigma),
            _ => None,
        }
    }

    /// The label shifts of a one-sample model's group for the next `shifts.len()` steps under
    /// full-batch label noise of this `sigma` (from [`NoiseModel::full_batch_label_sigma`]):
    /// `shifts[k]` holds step `k`'s shift of every lane. Each lane draws from its own stream
    /// exactly what [`NoiseModel::lane_stochastic_gradients`] would draw over those steps, in
    /// the same order (nothing when `sigma == 0`: all zero), so the results are bit-identical.
    /// Not inlined on purpose: it fills blocks outside vector loops (the register group step
    /// uses it for its first `AHEAD` steps, then [`NoiseModel::draw_lane_label_shifts`] one
    /// step at a time inside the loop).
    #[inline(never)]
    pub fn fill_lane_label_shifts(
        sigma: f64,
        rngs: &mut [TrajectoryRng; LANES],
        shifts: &mut [Lanes],
    ) {
        for (l, r) in rngs.iter_mut().enumerate() {
            for s in shifts.iter_mut() {
                s.0[l] = if sigma > 0.0 {
                    let z: f64 = r.sample(StandardNormal);
                    sigma * z
                } else {
                    0.0
                };
            }
        }
    }

    /// One step's label shifts of the lanes `lanes` of a group under full-batch label noise of
    /// `sigma > 0`: lane `l` of `shift` gets `sigma * z` with `z` the next [`StandardNormal`] of
    /// `rngs[l]`, the same number [`NoiseModel::fill_lane_label_shifts`] draws there (tested).
    /// Inlined on purpose, unlike that function: the register group step
    /// (`simulate::registers`) issues these draws, scalar integer work, between the groups'
    /// vector arithmetic (bound by the divider), so both run at once; measured there, T1/T2
    /// +14-25% (`bench/PROFILE.md`, "Draws overlapped with the arithmetic"). Each draw is
    /// [`standard_normal_inline`], whose common path has no call: a call would force the
    /// vector values live across it to be saved and restored.
    #[inline(always)]
    pub fn draw_lane_label_shifts(
        sigma: f64,
        rngs: &mut [TrajectoryRng; LANES],
        shift: &mut Lanes,
        lanes: std::ops::Range<usize>,
    ) {
        for l in lanes {
            shift.0[l] = sigma * standard_normal_inline(&mut rngs[l]);
        }
    }

    /// Buffers for [`NoiseModel::lane_stochastic_gradients`], sized for `model`.
    pub fn lane_workspace<M: Model>(&self, model: &M) -> LaneNoiseWorkspace {
        let (n, d) = (model.n_samples(), model.dim());
        LaneNoiseWorkspace {
            permutation: (0..LANES).flat_map(|_| 0..n).collect(),
            shift: vec![0.0; n * LANES],
            lane: self.workspace(model),
            theta: vec![0.0; d],
            grad: vec![0.0; d],
        }
    }

    /// [`NoiseModel::stochastic_gradient`] for the trajectories of a group advanced together
    /// (lanes `0..lanes` in use; coordinate-major layout as in [`Model::lane_gradients`]).
    /// Lane `l` draws from `rngs[l]` exactly what it would draw alone, in the same order, so
    /// every lane's gradient and loss are bit-identical to the one-trajectory call. Every
    /// lane draws, used or not (a fixed trip count lets the compiler interleave the eight
    /// independent generators); the numbers of unused lanes are ignored. Label,
    /// mini-batch and isotropic noise evaluate the model once for the group
    /// ([`Model::lane_gradients`]); Hessian-shaped and fixed noise go lane by lane. `scratch` has
    /// length at least [`Model::lane_scratch_len`]. Allocates nothing (except the
    /// Hessian-shaped noise).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn lane_stochastic_gradients<M: Model>(
        &self,
        model: &M,
        theta: &[f64],
        lanes: usize,
        rngs: &mut [TrajectoryRng; LANES],
        ws: &mut LaneNoiseWorkspace,
        grad: &mut [f64],
        scratch: &mut [f64],
        loss: &mut [f64; LANES],
    ) {
        let n = model.n_samples();
        match self {
            NoiseModel::None => {
                model.lane_gradients(theta, LaneBatch::full(lanes, n), grad, scratch, loss)
            }
            NoiseModel::Isotropic { sigma, batch } => {
                model.lane_gradients(theta, LaneBatch::full(lanes, n), grad, scratch, loss);
                let scale = sigma / (*batch as f64).sqrt();
                for (l, r) in rngs.iter_mut().enumerate().take(lanes) {
                    for g in grad.iter_mut().skip(l).step_by(LANES) {
                        let z: f64 = r.sample(StandardNormal);
                        *g += scale * z;
                    }
                }
            }
            NoiseModel::Label { sigma, batch } => {
                let b = batch.unwrap_or(n);
                if b < n {
                    for (perm, r) in ws.permutation.chunks_exact_mut(n).zip(rngs.iter_mut()) {
                        // Partial Fisher-Yates, as in `stochastic_gradient`.
                        for k in 0..b {
                            let j = r.random_range(k..n);
                            perm.swap(k, j);
                        }
                    }
                }
                if *sigma > 0.0 {
                    for shift in ws.shift.chunks_exact_mut(LANES).take(b) {
                        for (s, r) in shift.iter_mut().zip(rngs.iter_mut()) {
                            let z: f64 = r.sample(StandardNormal);
                            *s = sigma * z;
                        }
                    }
                }
                let lane_batch = LaneBatch {
                    lanes,
                    size: b,
                    indices: (b < n).then_some(&ws.permutation[..]),
                    stride: n,
                    shift: (*sigma > 0.0).then_some(&ws.shift[..]),
                };
                model.lane_gradients(theta, lane_batch, grad, scratch, loss);
            }
            NoiseModel::Hessian { .. } | NoiseModel::Fixed { .. } => {
                for (l, r) in rngs.iter_mut().enumerate().take(lanes) {
                    gather_lane(theta, l, &mut ws.theta);
                    loss[l] =
                        self.stochastic_gradient(model, &ws.theta, r, &mut ws.lane, &mut ws.grad);
                    scatter_lane(&ws.grad, l, grad);
                }
            }
        }
    }

    /// The exact covariance `Sigma(theta)` of the noise `xi = g - grad L(theta)`.
    pub fn covariance<M: Model>(&self, model: &M, theta: &[f64]) -> DMatrix<f64> {
        let d = model.dim();
        match self {
            NoiseModel::None => DMatrix::zeros(d, d),
            NoiseModel::Label { sigma, batch } => {
                let n = model.n_samples();
                let b = batch.unwrap_or(n);
                let (j, r) = derivatives::jacobian(model, theta);
                let jtj = j.transpose() * &j;
                let mut cov = jtj * (sigma * sigma / (b as f64 * n as f64));
                if b < n {
                    // C = (1/n) sum_i r_i^2 grad f_i grad f_i^T - grad L grad L^T
                    let mut jr = j.clone();
                    for i in 0..n {
                        for k in 0..d {
                            jr[(i, k)] *= r[i];
                        }
                    }
                    let gl = jr.row_sum().transpose() / n as f64;
                    let c = jr.transpose() * &jr / n as f64 - &gl * gl.transpose();
                    cov += c * ((n - b) as f64 / (b as f64 * (n - 1) as f64));
                }
                cov
            }
            NoiseModel::Isotropic { sigma, batch } => {
                DMatrix::identity(d, d) * (sigma * sigma / *batch as f64)
            }
            NoiseModel::Hessian { sigma, batch } => {
                derivatives::hessian(model, theta) * (sigma * sigma / *batch as f64)
            }
            NoiseModel::Fixed { covariance, .. } => covariance.clone(),
        }
    }
}

/// `rng.sample(StandardNormal)`, bit for bit and consuming the same numbers, with the
/// ziggurat's common path (one `u64`, about 98.8% of draws) written out and fully inlined and
/// everything else out of line (`standard_normal_slow`).
///
/// Why: `rand_distr`'s ziggurat is inlined too, but its rare paths call libm (`exp`, `ln`)
/// inside the same function, so a caller holding values in vector registers must save and
/// restore them around the draw. Here the common path has no call, and the rare one starts
/// over from the untouched generator: the draw works on a copy of the state that is written
/// back only when the fast test accepts, so `rand_distr`'s own code redraws exactly the same
/// numbers (tested against [`StandardNormal`] over 2 million draws, slow paths included).
/// The fast test is `rand_distr` 0.5's: `i` = low 8 bits, `u` in `[-1, 1)` from the high 52
/// bits, `x = u X[i]`, accepted when `|x| < X[i + 1]`.
#[inline(always)]
pub fn standard_normal_inline(rng: &mut TrajectoryRng) -> f64 {
    use rand::RngCore;
    let mut next = rng.clone();
    let bits = next.next_u64();
    let i = (bits & 0xff) as usize;
    // `(bits >> 12).into_float_with_exponent(1) - 3.0` in `rand_distr`: a value in `[-1, 1)`.
    let u = f64::from_bits((bits >> 12) | (1024 << 52)) - 3.0;
    let x = u * ZIG_NORM_X[i];
    if x.abs() < ZIG_NORM_X[i + 1] {
        *rng = next;
        x
    } else {
        standard_normal_slow(rng)
    }
}

/// The rare path of [`standard_normal_inline`]: `rng` is still the generator before the draw,
/// so `rand_distr` draws the same first number, fails the same fast test and goes on as it
/// always does. Out of line and cold, so that the callers' common path stays free of calls.
#[cold]
#[inline(never)]
fn standard_normal_slow(rng: &mut TrajectoryRng) -> f64 {
    rng.sample(StandardNormal)
}

/// The ziggurat abscissae `ZIG_NORM_X` of `rand_distr` 0.5 (private there), for the fast test
/// of [`standard_normal_inline`]; the bit-for-bit test against [`StandardNormal`] checks them.
/// The digits are `rand_distr`'s, verbatim (more than an `f64` holds, hence the `allow`).
#[rustfmt::skip]
#[allow(clippy::excessive_precision)]
static ZIG_NORM_X: [f64; 257] = [
    3.910757959537090045, 3.654152885361008796, 3.449278298560964462, 3.320244733839166074,
    3.224575052047029100, 3.147889289517149969, 3.083526132001233044, 3.027837791768635434,
    2.978603279880844834, 2.934366867207854224, 2.894121053612348060, 2.857138730872132548,
    2.822877396825325125, 2.790921174000785765, 2.760944005278822555, 2.732685359042827056,
    2.705933656121858100, 2.680514643284522158, 2.656283037575502437, 2.633116393630324570,
    2.610910518487548515, 2.589575986706995181, 2.569035452680536569, 2.549221550323460761,
    2.530075232158516929, 2.511544441625342294, 2.493583041269680667, 2.476149939669143318,
    2.459208374333311298, 2.442725318198956774, 2.426670984935725972, 2.411018413899685520,
    2.395743119780480601, 2.380822795170626005, 2.366237056715818632, 2.351967227377659952,
    2.337996148795031370, 2.324308018869623016, 2.310888250599850036, 2.297723348901329565,
    2.284800802722946056, 2.272108990226823888, 2.259637095172217780, 2.247375032945807760,
    2.235313384928327984, 2.223443340090905718, 2.211756642882544366, 2.200245546609647995,
    2.188902771624720689, 2.177721467738641614, 2.166695180352645966, 2.155817819875063268,
    2.145083634046203613, 2.134487182844320152, 2.124023315687815661, 2.113687150684933957,
    2.103474055713146829, 2.093379631137050279, 2.083399693996551783, 2.073530263516978778,
    2.063767547809956415, 2.054107931648864849, 2.044547965215732788, 2.035084353727808715,
    2.025713947862032960, 2.016433734904371722, 2.007240830558684852, 1.998132471356564244,
    1.989106007615571325, 1.980158896898598364, 1.971288697931769640, 1.962493064942461896,
    1.953769742382734043, 1.945116560006753925, 1.936531428273758904, 1.928012334050718257,
    1.919557336591228847, 1.911164563769282232, 1.902832208548446369, 1.894558525668710081,
    1.886341828534776388, 1.878180486290977669, 1.870072921069236838, 1.862017605397632281,
    1.854013059758148119, 1.846057850283119750, 1.838150586580728607, 1.830289919680666566,
    1.822474540091783224, 1.814703175964167636, 1.806974591348693426, 1.799287584547580199,
    1.791640986550010028, 1.784033659547276329, 1.776464495522344977, 1.768932414909077933,
    1.761436365316706665, 1.753975320315455111, 1.746548278279492994, 1.739154261283669012,
    1.731792314050707216, 1.724461502945775715, 1.717160915015540690, 1.709889657069006086,
    1.702646854797613907, 1.695431651932238548, 1.688243209434858727, 1.681080704722823338,
    1.673943330923760353, 1.666830296159286684, 1.659740822855789499, 1.652674147080648526,
    1.645629517902360339, 1.638606196773111146, 1.631603456932422036, 1.624620582830568427,
    1.617656869570534228, 1.610711622367333673, 1.603784156023583041, 1.596873794420261339,
    1.589979870021648534, 1.583101723393471438, 1.576238702733332886, 1.569390163412534456,
    1.562555467528439657, 1.555733983466554893, 1.548925085471535512, 1.542128153226347553,
    1.535342571438843118, 1.528567729435024614, 1.521803020758293101, 1.515047842773992404,
    1.508301596278571965, 1.501563685112706548, 1.494833515777718391, 1.488110497054654369,
    1.481394039625375747, 1.474683555695025516, 1.467978458615230908, 1.461278162507407830,
    1.454582081885523293, 1.447889631277669675, 1.441200224845798017, 1.434513276002946425,
    1.427828197027290358, 1.421144398672323117, 1.414461289772464658, 1.407778276843371534,
    1.401094763676202559, 1.394410150925071257, 1.387723835686884621, 1.381035211072741964,
    1.374343665770030531, 1.367648583594317957, 1.360949343030101844, 1.354245316759430606,
    1.347535871177359290, 1.340820365893152122, 1.334098153216083604, 1.327368577624624679,
    1.320630975217730096, 1.313884673146868964, 1.307128989027353860, 1.300363230327433728,
    1.293586693733517645, 1.286798664489786415, 1.279998415710333237, 1.273185207661843732,
    1.266358287014688333, 1.259516886060144225, 1.252660221891297887, 1.245787495544997903,
    1.238897891102027415, 1.231990574742445110, 1.225064693752808020, 1.218119375481726552,
    1.211153726239911244, 1.204166830140560140, 1.197157747875585931, 1.190125515422801650,
    1.183069142678760732, 1.175987612011489825, 1.168879876726833800, 1.161744859441574240,
    1.154581450355851802, 1.147388505416733873, 1.140164844363995789, 1.132909248648336975,
    1.125620459211294389, 1.118297174115062909, 1.110938046009249502, 1.103541679420268151,
    1.096106627847603487, 1.088631390649514197, 1.081114409698889389, 1.073554065787871714,
    1.065948674757506653, 1.058296483326006454, 1.050595664586207123, 1.042844313139370538,
    1.035040439828605274, 1.027181966030751292, 1.019266717460529215, 1.011292417434978441,
    1.003256679539591412, 0.995156999629943084, 0.986990747093846266, 0.978755155288937750,
    0.970447311058864615, 0.962064143217605250, 0.953602409875572654, 0.945058684462571130,
    0.936429340280896860, 0.927710533396234771, 0.918898183643734989, 0.909987953490768997,
    0.900975224455174528, 0.891855070726792376, 0.882622229578910122, 0.873271068082494550,
    0.863795545546826915, 0.854189171001560554, 0.844444954902423661, 0.834555354079518752,
    0.824512208745288633, 0.814306670128064347, 0.803929116982664893, 0.793369058833152785,
    0.782615023299588763, 0.771654424216739354, 0.760473406422083165, 0.749056662009581653,
    0.737387211425838629, 0.725446140901303549, 0.713212285182022732, 0.700661841097584448,
    0.687767892786257717, 0.674499822827436479, 0.660822574234205984, 0.646695714884388928,
    0.632072236375024632, 0.616896989996235545, 0.601104617743940417, 0.584616766093722262,
    0.567338257040473026, 0.549151702313026790, 0.529909720646495108, 0.509423329585933393,
    0.487443966121754335, 0.463634336771763245, 0.437518402186662658, 0.408389134588000746,
    0.375121332850465727, 0.335737519180459465, 0.286174591747260509, 0.215241895913273806,
    0.000000000000000000,
];

/// `grad += scale * F z` with `z ~ N(0, I)`; `z` is a buffer of length `d`.
#[inline]
fn add_correlated(
    grad: &mut [f64],
    factor: &DMatrix<f64>,
    scale: f64,
    rng: &mut TrajectoryRng,
    z: &mut [f64],
) {
    for zi in z.iter_mut() {
        *zi = rng.sample(StandardNormal);
    }
    let d = grad.len();
    for (i, g) in grad.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (k, &zk) in z.iter().enumerate().take(d) {
            acc += factor[(i, k)] * zk;
        }
        *g += scale * acc;
    }
}

/// Reusable buffers of a group's noise (see [`NoiseModel::lane_stochastic_gradients`]).
#[derive(Clone, Debug)]
pub struct LaneNoiseWorkspace {
    /// Per-lane sample permutations, lane `l`'s at `[l n, (l + 1) n)`.
    permutation: Vec<usize>,
    /// Label shifts, coordinate-major.
    shift: Vec<f64>,
    /// One trajectory's workspace, for the noises that go lane by lane.
    lane: NoiseWorkspace,
    /// One lane's parameters and gradient.
    theta: Vec<f64>,
    grad: Vec<f64>,
}

/// Reusable buffers of one trajectory's noise.
#[derive(Clone, Debug)]
pub struct NoiseWorkspace {
    permutation: Vec<usize>,
    shift: Vec<f64>,
    scratch: Vec<f64>,
    z: Vec<f64>,
}

#[cfg(test)]
mod tests;
