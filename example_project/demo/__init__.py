"""Demo app of the example site: signup, profile, phone change and the sandbox inbox."""
