"""Applications: the command line, studies, comparisons, pictures, verification and validation."""
