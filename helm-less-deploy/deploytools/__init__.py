"""Dev-time tools behind helm-less-deploy/gen.py: HCL2 (as python-hcl2 parses it) to API JSON.

Why here and not in the product: only gen.py uses them, to write the committed job JSON (and
the copy shipped as package data, controller/deploy/mesh-controller.nomad.json);
`controllerctl install` reads that JSON and never parses HCL. python-hcl2 is a development
dependency, and 700 lines of HCL evaluation have no business in an installed controller.

Why a package named ``deploytools`` in this directory: ``helm-less-deploy`` has a dash, so it
cannot be a package itself, and the directory should stay the one place an operator finds the
deployment files. gen.py, run as a script, has its own directory on ``sys.path`` already; the
tests get it from pytest's ``pythonpath`` setting in pyproject.toml, so they import
``deploytools.hcl2json`` like any module, without path tricks of their own.
"""
