"""The fault suite: real processes, real faults, figures printed for every run."""
