"""The lecturers service's pure rules: plain functions over frozen msgspec Structs."""
