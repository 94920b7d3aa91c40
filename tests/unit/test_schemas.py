"""The committed JSON Schemas are exactly what the models generate (regenerate with
`python -m crds_equivalent.schemas`)."""

import json

from crds_equivalent import keys
from crds_equivalent.schemas import SCHEMA_DIR, render, schemas


def test_committed_schemas_are_fresh() -> None:
    generated = schemas()
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(generated), "schema files added or removed: regenerate"
    for name, schema in generated.items():
        committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert committed == render(schema), f"{name} is stale: python -m crds_equivalent.schemas"


def test_meta_schema_lists_every_user_key() -> None:
    meta = json.loads((SCHEMA_DIR / "mesh-meta.schema.json").read_text(encoding="utf-8"))
    assert set(meta["properties"]) == set(keys.USER_KEYS)


def test_readme_documents_every_user_key() -> None:
    readme = (SCHEMA_DIR.parent / "README.md").read_text(encoding="utf-8")
    for key in keys.USER_KEYS:
        assert f"`{key}`" in readme
