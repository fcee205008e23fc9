# Hydra configuration of diffesm (shipped in the wheel as the package data `esm._configs`).
