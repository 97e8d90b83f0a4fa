"""Display names of the methods, shared by the app and the reports (no heavy imports: the app reads it at start-up)."""

METHOD_TITLES = {
    "denoise": "Diffusion denoise (no data term)",
    "sdedit": "SDEdit",
    "score_ald": "Score-ALD",
    "dps": "DPS",
    "wiener": "Wiener",
    "richardson_lucy": "Richardson-Lucy",
    "tv": "Total variation",
    "biharmonic": "Biharmonic",
}
