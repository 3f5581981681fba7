"""numpy jobs and the engines that turn stored readings into state: liveness (now), coverage and
alerts (later issues)."""

from processing.liveness import LivenessConfig, run_liveness

__all__ = ["LivenessConfig", "run_liveness"]
