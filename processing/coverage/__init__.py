"""Coverage: the raster of best signal per operator and technology from the towers online now,
villages and commune centres judged on it (and on probe measurements), dead spots, change
events and N-1 criticality. The radio formulas are in ``devices.radio``; the terrain's
diffraction over a DEM in ``terrain`` (read by ``dem``)."""

from processing.coverage.config import CoverageConfig
from processing.coverage.engine import CoverageEngine
from processing.coverage.grid import Grid
from processing.coverage.places import Place, PlaceCoverage
from processing.coverage.serving import SiteState
from processing.coverage.state import Coverage, CoverageEvent, TowerCriticality

__all__ = [
    "Coverage",
    "CoverageConfig",
    "CoverageEngine",
    "CoverageEvent",
    "Grid",
    "Place",
    "PlaceCoverage",
    "SiteState",
    "TowerCriticality",
]
