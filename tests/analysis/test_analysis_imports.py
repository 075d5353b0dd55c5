"""``phanet.analysis``: importing its modules leaves their optional dependencies alone, and neither the
package nor its command line imports it (what each module measures is tested beside what it reads:
``test_demo.py``, ``test_training.py``, ``test_input_pipeline.py``, ``test_realism.py``)."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("sklearn", "ai_edge_litert", "fer", "facex")


def test_optional_dependencies_are_imported_where_they_are_used():
    code = "\n".join(
        [
            "import importlib, pkgutil, sys",
            "import phanet, phanet.cli",
            "print('phanet.analysis' in sys.modules)",
            "import phanet.analysis.realism",
            f"print(sorted(m for m in ('matplotlib', *{OPTIONAL}) if m in sys.modules))",
            "import phanet.analysis",
            "names = [m.name for m in pkgutil.iter_modules(phanet.analysis.__path__)]",
            "for name in names:",
            "    importlib.import_module(f'phanet.analysis.{name}')",
            f"print(len(names), sorted(m for m in {OPTIONAL} if m in sys.modules))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "[]", "13", "[]"], result.stderr
