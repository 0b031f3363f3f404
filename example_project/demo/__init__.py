"""Demo app of the example site: signup, profile and phone change."""
