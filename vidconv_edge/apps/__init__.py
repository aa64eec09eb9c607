"""Applications on top of the path: evaluating any artifact, building the bundled default models."""
