"""The pipespec front end: YAML spec -> typed, immutable IR graph.  Imports neither
runtime nor targets."""
