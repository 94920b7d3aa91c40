"""Where the committed fixtures live, named once so a test module can move between layers."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
