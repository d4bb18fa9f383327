"""Moonshine base (English) as the ``moonshine-cpp`` wheel ships it, made runnable by ONNX Runtime.

The wheel (MIT, Moonshine AI) carries the model as two ONNX Runtime *ORT-format* files (an
encoder and a merged decoder) and a tokenizer; nothing is downloaded. Its weights are stored as
int8 with a Cast and a Mul per weight to dequantise them, and ORT-format models are run without
graph optimisation, so every decoder step dequantised all 41 million weights again: 170 ms a
token. :func:`onnx_model` rebuilds each file as an ordinary ONNX model (the same nodes, weights
and subgraphs, in topological order), which ONNX Runtime then optimises when it loads it,
folding the dequantisation once: 11 ms a token on one thread.

The wheel's own Python module is never imported: it loads a bundled ONNX Runtime and a native
library built for newer CPUs ("Illegal instruction" on some), neither of which is used here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from voice_bridge.asr.base import AsrModelError

FILES = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")


def model_dir() -> Path:
    """The installed wheel's ``models/base-en`` directory.

    Raises:
        AsrModelError: If the package is not installed or a file is missing.
    """
    spec = importlib.util.find_spec("moonshine_cpp")  # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise AsrModelError("Moonshine is not installed (pip install moonshine-cpp==0.1.4)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "base-en"
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise AsrModelError(f"the Moonshine package is incomplete (missing {missing} in {path})")
    return path


def read_vocabulary(path: Path) -> list[bytes]:
    """The tokenizer's pieces by token id (``tokenizer.bin``: each a length, one byte or two
    for 128 and more, then the UTF-8 bytes; the word boundary is U+2581)."""
    data = path.read_bytes()
    pieces, at = [], 0
    while at < len(data):
        length = data[at]
        at += 1
        if length >= 128:
            length = (length & 0x7F) | (data[at] << 7)
            at += 1
        pieces.append(data[at : at + length])
        at += length
    return pieces


def onnx_model(path: Path) -> bytes:
    """The ORT-format model at ``path`` as a serialised ONNX model.

    Raises:
        AsrModelError: If the ``onnx`` package is missing or the file is not what is expected.
    """
    try:
        import onnx
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.InferenceSession import (
            InferenceSession,
        )
    except ImportError as exc:
        raise AsrModelError("Moonshine needs the onnx package (pip install onnx)") from exc
    try:
        model = InferenceSession.GetRootAs(path.read_bytes(), 0).Model()
        graph = _graph(onnx, model.Graph(), "main")
        opsets = [
            onnx.helper.make_opsetid(
                (model.OpsetImport(i).Domain() or b"").decode(), model.OpsetImport(i).Version()
            )
            for i in range(model.OpsetImportLength())
        ]
        built = onnx.helper.make_model(graph, opset_imports=opsets, ir_version=model.IrVersion())
    except (AttributeError, ValueError, KeyError, AssertionError) as exc:
        raise AsrModelError(f"{path.name} is not a model this code can read: {exc}") from exc
    return built.SerializeToString()


def _tensor(onnx: Any, tensor: Any) -> Any:
    proto = onnx.TensorProto()
    proto.name = tensor.Name().decode()
    proto.data_type = tensor.DataType()
    proto.dims.extend(tensor.Dims(i) for i in range(tensor.DimsLength()))
    if tensor.StringDataLength():
        proto.string_data.extend(tensor.StringData(i) for i in range(tensor.StringDataLength()))
    elif tensor.RawDataLength():
        if tensor.ExternalDataOffset() > 0:
            raise ValueError(f"tensor {proto.name} keeps its data outside the file")
        proto.raw_data = tensor.RawDataAsNumpy().tobytes()
    return proto


def _value_info(onnx: Any, value: Any) -> Any:
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs.TensorTypeAndShape import (
        TensorTypeAndShape,
    )

    name = value.Name().decode()
    kind = value.Type()
    if kind is None or kind.ValueType() != 1:  # not a tensor: no type to declare
        return onnx.helper.make_empty_tensor_value_info(name)
    table = kind.Value()
    tensor = TensorTypeAndShape()
    tensor.Init(table.Bytes, table.Pos)
    shape = tensor.Shape()
    dims = None
    if shape is not None:
        dims = []
        for i in range(shape.DimLength()):
            dim = shape.Dim(i).Value()
            if dim is None:
                dims.append(None)
            elif dim.DimType() == 1:
                dims.append(dim.DimValue())
            else:
                dims.append((dim.DimParam() or b"").decode() or None)
    return onnx.helper.make_tensor_value_info(name, tensor.ElemType(), dims)


def _attribute(onnx: Any, attribute: Any) -> Any:
    name, kind, make = attribute.Name().decode(), attribute.Type(), onnx.helper.make_attribute
    proto = onnx.AttributeProto
    readers = {
        1: lambda: make(name, attribute.F()),
        2: lambda: make(name, attribute.I()),
        3: lambda: make(name, attribute.S()),
        4: lambda: make(name, _tensor(onnx, attribute.T())),
        5: lambda: make(name, _graph(onnx, attribute.G(), name)),
        6: lambda: make(
            name,
            [attribute.Floats(i) for i in range(attribute.FloatsLength())],
            attr_type=proto.FLOATS,
        ),
        7: lambda: make(
            name, [attribute.Ints(i) for i in range(attribute.IntsLength())], attr_type=proto.INTS
        ),
        8: lambda: make(
            name,
            [attribute.Strings(i) for i in range(attribute.StringsLength())],
            attr_type=proto.STRINGS,
        ),
    }
    if kind not in readers:
        raise ValueError(f"attribute {name} of an unsupported kind ({kind})")
    return readers[kind]()


def _graph(onnx: Any, graph: Any, name: str) -> Any:
    if graph.SparseInitializersLength():
        raise ValueError("sparse initializers")
    values = {
        graph.NodeArgs(i).Name().decode(): graph.NodeArgs(i) for i in range(graph.NodeArgsLength())
    }
    weights = [_tensor(onnx, graph.Initializers(i)) for i in range(graph.InitializersLength())]
    nodes = []
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        if node.Type() != 0:
            raise ValueError("a fused node (the file was saved for one execution provider)")
        made = onnx.helper.make_node(
            node.OpType().decode(),
            [node.Inputs(j).decode() for j in range(node.InputsLength())],
            [node.Outputs(j).decode() for j in range(node.OutputsLength())],
            name=(node.Name() or b"").decode(),
            domain=(node.Domain() or b"").decode(),
        )
        made.attribute.extend(
            _attribute(onnx, node.Attributes(j)) for j in range(node.AttributesLength())
        )
        nodes.append(made)
    names = {w.name for w in weights}
    inputs = [graph.Inputs(i).decode() for i in range(graph.InputsLength())]
    return onnx.helper.make_graph(
        _in_order(nodes, set(inputs) | names),
        name,
        [_value_info(onnx, values[n]) for n in inputs if n not in names],
        [
            _value_info(onnx, values[graph.Outputs(i).decode()])
            for i in range(graph.OutputsLength())
        ],
        weights,
    )


def _needs(node: Any) -> set[str]:
    """What ``node`` reads, its subgraphs' reads from outside them included."""
    needs = {name for name in node.input if name}
    for attribute in node.attribute:
        if attribute.type == attribute.GRAPH:
            inner = {w.name for w in attribute.g.initializer}
            inner |= {name for n in attribute.g.node for name in n.output}
            inner |= {i.name for i in attribute.g.input}
            needs |= {name for n in attribute.g.node for name in _needs(n) if name not in inner}
    return needs


def _in_order(nodes: list[Any], available: set[str]) -> list[Any]:
    """``nodes`` in an order where each comes after what it reads (ONNX requires it)."""
    produced = {name for node in nodes for name in node.output}
    ordered, pending, ready = [], list(nodes), set(available)
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready or name not in produced for name in _needs(node)):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("the graph has a cycle")
        pending = waiting
    return ordered
