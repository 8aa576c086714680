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
    for f in L2.rglob("*.py"):
        assert "cimport" not in f.read_text(), f


def _cython_tree(path: Path):
    from Cython.Compiler.TreeFragment import parse_from_strings
    return parse_from_strings(path.stem, path.read_text())


def _walk(node):
    """Every node of a Cython parse tree under ``node``."""
    from Cython.Compiler.Nodes import Node
    yield node
    for attr in getattr(node, "child_attrs", []):
        child = getattr(node, attr, None)
        for c in child if isinstance(child, list) else [child]:
            if isinstance(c, Node):
                yield from _walk(c)


def _mbuf_names(func) -> set[str]:
    """Names a function declares as rte_mbuf pointers (arguments and locals)."""
    from Cython.Compiler import Nodes
    names = set()
    for node in _walk(func):
        decls = []
        if isinstance(node, Nodes.CArgDeclNode):
            decls = [(node.base_type, node.declarator)]
        elif isinstance(node, Nodes.CVarDefNode):
            decls = [(node.base_type, d) for d in node.declarators]
        for base, declarator in decls:
            if getattr(base, "name", None) == "rte_mbuf":
                while not hasattr(declarator, "name") and hasattr(declarator, "base"):
                    declarator = declarator.base
                names.add(declarator.name)
    return names


def packet_loops(path: Path) -> list[str]:
    """Functions of ``path`` with a loop that indexes an array of mbufs (a local or
    argument of type rte_mbuf *[] / **, or a burst's ``_pkts``), found by parsing."""
    from Cython.Compiler import ExprNodes, Nodes
    found = []
    tree = _cython_tree(path)
    for func in _walk(tree):
        if not isinstance(func, (Nodes.CFuncDefNode, Nodes.DefNode)):
            continue
        mbufs = _mbuf_names(func)
        for loop in _walk(func):
            if not isinstance(loop, (Nodes.ForInStatNode, Nodes.ForFromStatNode,
                                     Nodes.WhileStatNode)):
                continue
            for node in _walk(loop.body):
                if isinstance(node, ExprNodes.IndexNode) and (
                        (isinstance(node.base, ExprNodes.NameNode) and node.base.name in mbufs)
                        or (isinstance(node.base, ExprNodes.AttributeNode)
                            and node.base.attribute == "_pkts")):
                    name = getattr(func, "name", None) or func.declarator.base.name
                    found.append(f"{path.name}:{name}")
                    break
    return sorted(set(found))


DATA_PATH = sorted(L1.glob("dp_*.pyx"))
# the pcapng writer formats copies the data path made and writes them to a file: a loop
# over mbufs, but file I/O on a writer thread, not a packet path (DESIGN.md section 9)
LOOPS_OUTSIDE_THE_DATA_PATH = {"capture.pyx:dv_capture_drain"}


def test_packet_loops_only_in_the_data_path_modules():
    names = {f.name for f in DATA_PATH}
    assert {"dp_hot.pyx", "dp_capture.pyx", "dp_gen.pyx", "dp_flows.pyx", "dp_burst.pyx"} <= names
    # the check finds the loops where they belong (it can fail) ...
    found = {loop for f in DATA_PATH for loop in packet_loops(f)}
    assert {"dp_hot.pyx:_sum_len", "dp_hot.pyx:_macswap", "dp_burst.pyx:dv_lengths",
            "dp_gen.pyx:dv_gen_build", "dp_flows.pyx:dv_flows_account",
            "dp_capture.pyx:dv_capture_copy"} <= found
    # ... and none anywhere else in L1, but the named exceptions
    for f in L1.glob("*.pyx"):
        if f not in DATA_PATH:
            loops = set(packet_loops(f)) - LOOPS_OUTSIDE_THE_DATA_PATH
            assert not loops, f"packet loop outside the dp_*.pyx modules: {sorted(loops)}"
    assert LOOPS_OUTSIDE_THE_DATA_PATH <= set(packet_loops(L1 / "capture.pyx"))


def test_data_path_functions_are_noexcept_nogil():
    from Cython.Compiler import Nodes
    for path in DATA_PATH + sorted(L1.glob("dp_*.pxd")):
        funcs = [n for n in _walk(_cython_tree(path)) if isinstance(n, Nodes.CFuncDefNode)]
        assert funcs or path.suffix == ".pxd", path.name
        for fn in funcs:
            d = fn.declarator
            while not isinstance(d, Nodes.CFuncDeclaratorNode):
                d = d.base
            assert d.nogil and not d.exception_check, f"{path.name}: {d.base.name} is not noexcept nogil"


# a module past this many lines has two jobs (DESIGN.md section 9); the exceptions, each
# with its reason
MAX_MODULE_LINES = 600
LONG_MODULES = {
    "vhost.pyx": "the vhost library's callbacks and the VhostPort class share the slot "
                 "table, the event ring and their lock, which are C globals of the module",
}


def test_no_module_over_the_line_limit():
    over = {}
    for f in list(L1.glob("*.pyx")) + list(L2.rglob("*.py")):
        n = len(f.read_text().splitlines())
        if n > MAX_MODULE_LINES and f.name not in LONG_MODULES:
            over[str(f.relative_to(REPO))] = n
    assert not over, f"modules over {MAX_MODULE_LINES} lines: {over}"
    for name in LONG_MODULES:     # an exception that no longer applies goes
        f = next(p for p in list(L1.glob("*.pyx")) + list(L2.rglob("*.py")) if p.name == name)
        assert len(f.read_text().splitlines()) > MAX_MODULE_LINES, f"{name} is within the limit now"


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


def test_perf_modules_import_no_private_names():
    """perf/: what benchmarks share is public (perf/setups.py); no module reaches into
    another's private names."""
    import ast
    crossings = []
    for f in (REPO / "perf").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("perf"):
                crossings += [f"{f.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and a.name != "__version__"]
    assert not crossings, crossings
