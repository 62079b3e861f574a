"""The engine: symbols, metrics, one formula per op, blocks as dataflows of ops, the kind registry,
the network walk, the report and the formula compiler. Imports only the spec layer (and errors)."""
