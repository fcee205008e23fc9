# Small datasets shipped with diffesm (installed as the package data `esm._data`); see README.md.
