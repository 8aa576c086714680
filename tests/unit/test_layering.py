"""The layering rules of DESIGN.md section 3, checked on the sources."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
L0 = REPO / "cython" / "dpdkvirtio" / "_dpdk"
L1 = REPO / "cython" / "dpdkvirtio" / "_core"
L2 = REPO / "dpdkvirtio"
L2_MODULES = {p.stem for p in L2.glob("*.py")} - {"__init__", "__main__", "errors"}


def test_l0_is_declarations_only():
    assert not list(L0.glob("*.pyx"))
    for pxd in L0.glob("*.pxd"):
        text = pxd.read_text()
        assert "import " not in text.replace("cimport", ""), pxd
        assert not re.search(r"^\s*def ", text, re.M), pxd


def test_l1_does_not_import_l2_policy():
    for f in list(L1.glob("*.pyx")) + list(L1.glob("*.pxd")):
        for m in re.finditer(r"^\s*(?:from|import)\s+dpdkvirtio\.(\w+)", f.read_text(), re.M):
            assert m.group(1) in ("_dpdk", "_core", "errors"), f"{f.name} imports dpdkvirtio.{m.group(1)}"


def test_l2_has_no_cimport():
    for f in L2.glob("*.py"):
        assert "cimport" not in f.read_text(), f


def test_packet_loops_only_in_datapath():
    # nogil C functions that loop over packets live in datapath.pyx only
    for f in L1.glob("*.pyx"):
        if f.name == "datapath.pyx":
            continue
        text = f.read_text()
        for m in re.finditer(r"^cdef [^\n]*noexcept nogil:\n((?:[ \t]+[^\n]*\n|\n)*)", text, re.M):
            body = m.group(1)
            assert "pkts[" not in body, f"packet loop outside datapath.pyx in {f.name}"


def test_datapath_functions_are_noexcept_nogil():
    text = (L1 / "datapath.pyx").read_text()
    for m in re.finditer(r"^cdef (?!struct|enum|inline uint64_t _rng)([^\n]*\))\s*([^\n]*):$", text, re.M):
        assert "noexcept nogil" in m.group(2), m.group(0)


def test_setup_py_holds_no_module_list():
    text = (REPO / "setup.py").read_text()
    assert "Extension(" not in text and "cythonize" not in text


def _imports(path: Path) -> set[str]:
    """Modules a Python file imports (absolute names; relative ones resolved in the
    dpdkvirtio package), found by parsing, not grepping."""
    import ast
    tree = ast.parse(path.read_text())
    pkg = ["dpdkvirtio"] + list(path.relative_to(L2).parent.parts)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_runtime_code_does_not_use_the_test_peers():
    for f in L2.rglob("*.py"):
        rel = f.relative_to(L2)
        if rel.parts[0] == "peers":
            continue
        used = {m for m in _imports(f) if m == "dpdkvirtio.peers" or m.startswith("dpdkvirtio.peers.")}
        assert not used, f"{rel} imports {sorted(used)}: peers are for tests and perf/"


def test_one_pdeathsig_helper():
    users = [f.relative_to(L2) for f in L2.rglob("*.py") if "prctl(" in f.read_text()]
    assert [str(u) for u in users] == ["_process.py"]
