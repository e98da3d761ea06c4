"""Where the tests' fixtures live: inside the repository, so a fresh clone has them."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FORGEJO = FIXTURES / "forgejo"
WEBHOOKS = FORGEJO / "webhooks"
