-- Fibre reach per commune (the broadband page): households, and those the fibre passes, as the
-- scenario's planning data gives them. An OLT's birth record only carries the total over the
-- communes it serves, so a commune's own share cannot be read from the registry.
ALTER TABLE communes
    ADD COLUMN households integer CHECK (households >= 0),
    ADD COLUMN households_passed integer CHECK (households_passed >= 0);

-- Table-level grants (0013) already reach new columns; said again here so this file alone shows
-- who reads them.
GRANT SELECT ON communes TO ioc_dashboard;
