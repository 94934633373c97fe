"""CgriNet and its registry of named variants."""
