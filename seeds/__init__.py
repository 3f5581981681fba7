"""The Bình Định scenario: places (real names and GSO codes, synthetic positions) and the
device inventory generated from them. See ``seeds/data/README.md`` for sources and licences."""

from seeds.inventory import OPERATOR_SHARES
from seeds.model import (
    BroadbandNode,
    BtsSector,
    BtsSite,
    Camera,
    Commune,
    District,
    LatLon,
    Probe,
    Road,
    ScenarioDevice,
    SeedPlace,
    Village,
)
from seeds.scenario import Scenario, load_scenario

__all__ = [
    "OPERATOR_SHARES",
    "BroadbandNode",
    "BtsSector",
    "BtsSite",
    "Camera",
    "Commune",
    "District",
    "LatLon",
    "Probe",
    "Road",
    "Scenario",
    "ScenarioDevice",
    "SeedPlace",
    "Village",
    "load_scenario",
]
