"""The words on the page: the title, each tab's lead sentence and its maths, and the longer reading notes."""

from __future__ import annotations

INTRO = "# diffdemo: diffusion models as priors for inverse problems"


SPECTRUM_TABLE_NOTE = (
    "**How to read the table.** sigma_max is how much one Jacobian can stretch the image in its worst direction; "
    "**rho(J_f)**, the spectral radius, is the largest growth factor of one reverse step repeated (above 1: that "
    "direction grows). The **Euler step limit** h_max is the largest step h = 1 - abar_t / abar_t' for which the "
    "explicit step stays stable for every eigenvalue found (|1 + h lambda| <= 1); the last column turns it into "
    "how far down one strided jump from t may go. 't = 0 (any stride)' means even one jump straight to the clean "
    "image has h = 1 - abar_t <= h_max: this stability test sets no limit on the stride at that t."
)


CURVE_NOTE = (
    "Read the pictures left to right: up to about t = 100-200 the denoised face is still this person; by t = 300-500 "
    "the network has replaced the identity with a plausible face of its own, and PSNR falls with it. The prior takes "
    "over as the noise hides the image (poster Figure 1): denoising is not undoing the noise."
)


# One plain sentence per tab: what to look for. The maths sits folded underneath (equation numbers: the poster's).
LEAD = {
    "denoise": "**What to look for:** from a little noise (t = 100) the reverse run gives back this person. Then "
    "press *Compute the curve*: as t grows the face turns into someone else, because the prior takes over "
    "(poster Figure 1).",
    "generate": "**What to look for:** faces appear out of pure noise. Early on the network's guess x0_hat is a blurry "
    "average face; the details arrive last.",
    "restore": "**What to look for:** one blurred or masked measurement y, restored by each method side by side. "
    "DPS, which pulls every step towards y through the network, is the best diffusion method; *Compare all* adds "
    "the classical ones.",
    "sensitivity": "**What to look for:** click a pixel. The maps show which other pixels the network's answer "
    "depends on: at small t a few neighbours, at larger t structure across the face (eyes, cheekbones; poster "
    "Figures 6 and 7).",
    "spectrum": "**What to look for:** how strongly one reverse step can stretch an image, and along which patterns, "
    "at each timestep (poster Figures 8 and 9); results appear one timestep at a time.",
}

MATHS = {
    "denoise": """The noised image is **x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z** (eq. 3; z is Gaussian noise).
**abar_t** ("alpha bar") is the share of the original image left at step t: 1 at t = 0, about 0.0003 at t = 999.
The network predicts the noise eps; the **score** s = -eps / sqrt(1 - abar_t) (eq. 22) points towards likelier
images. **Tweedie's formula** x0_hat = (x_t + (1 - abar_t) s) / sqrt(abar_t) (eq. 11) is the network's one-jump
guess of the clean image, shown on the right; the reverse step x_{t-1} = (x_t + (1 - alpha_t) s) / sqrt(alpha_t)
(eqs. 17, 24) walks there in small steps. There is no data term: once the noise has hidden a detail, nothing
brings back the original, and the prior fills it in.""",
    "generate": """Start from x_T ~ N(0, I) and apply the reverse step with fresh noise,
x_{t-1} = (x_t + (1 - alpha_t) s) / sqrt(alpha_t) + sigma_t z (eq. 25), from t = 999 down to 0. With fewer steps
than 1000 the run is strided (t jumps by 1000 / steps), with alpha_t replaced by abar_t / abar_t' as in diffusers.""",
    "restore": """The measurement is **y = A x0 + sigma_y n**: A blurs or hides pixels, n is Gaussian noise.
**SDEdit** (eq. 26) noises a measurement-consistent start to t0 and runs the reverse steps with no data term.
**Score-ALD** (eqs. 27, 28) adds zeta_t g after each step, g = -grad ||y - A x_t||^2: a cheap pull towards y.
**DPS** (eq. 29) adds lambda g / ||g|| with g = -grad_{x_t} ||y - A x0_hat(x_t)||, the gradient taken through the
network's Tweedie estimate: about 2-3 network evaluations a step, but every step agrees with y.
*k chains averaged* runs k independent restorations and shows their mean, an estimate of E[x0 | y].
**Classical baselines** (Compare all): Wiener filter, Richardson-Lucy and total variation for blur, biharmonic
and total variation for holes. PSNR (higher is better), SSIM (1 is perfect) and LPIPS (learned perceptual
distance, lower is better) compare each result with the truth.""",
    "sensitivity": """A **Jacobian column** J e_i is how every output pixel moves when input pixel i moves a little
(eqs. 31, 32). Three maps, three questions: **score J_s** asks how the network's pull on the image changes;
**one reverse step J_f** = (I + (1 - alpha_t) J_s) / sqrt(alpha_t) (eq. 34) asks what one step of the sampler does
with the nudge (almost only the pixel itself: the step is small); **denoiser J_D** = (I + (1 - abar_t) J_s) /
sqrt(abar_t) asks how Tweedie's clean-image guess changes. Red: that pixel moves the same way, blue: the opposite
way. The colour scale is symmetric about zero and set by the pixels *around* the probed one (its own, much larger
value is written above each map), so the structure away from it is visible; the nearest neighbours may
saturate. **Energy vs radius** (Figure 7): the share of the squared response within r pixels; **r50 / r90**: the
radius holding 50% / 90% of it; **effective pixels**: how many pixels would share it if it were spread evenly.
**FD vs JVP**: the cheap finite difference of eq. 32 against the exact derivative (forward-mode autodiff).""",
    "spectrum": """The **singular values** of a Jacobian are how much it stretches its strongest directions; the
matching **singular vectors** are those directions, shown as pictures (grey = 0). They are found without ever
building the 12,288 x 12,288 matrix: **Lanczos** bidiagonalisation builds them from one Jacobian-vector product
and one vector-Jacobian product per step, and **Arnoldi** iteration does the same for eigenvalues of the
non-symmetric J_f. Their estimates are called **Ritz values**. **rho(J_f)**, the spectral radius (eq. 35), is
the largest |eigenvalue|: above 1, one reverse step repeated makes that pattern grow.""",
}
MATHS["spectrum"] += "\n\n" + SPECTRUM_TABLE_NOTE
