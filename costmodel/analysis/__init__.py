"""Analysis on top of the engine's reports: counting conventions, sweeps, design-space tools, memory,
hardware profiles and the roofline. Imports the engine and the spec layer, never presentation."""
