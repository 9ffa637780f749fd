"""Minimal GGUF v3 reader and writer (little-endian), written from the GGUF spec.

Only what the demo-model tools need: scalar/string/array metadata and F32/F16
tensors. Shapes are kept in ggml order (ne[0] first, the fastest-varying
dimension); numpy arrays are returned in the reversed (row-major) order, so a
ggml tensor with ne = {D, V} comes back as a numpy array of shape (V, D).
"""

import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)

_SCALAR_FORMATS = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
    T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}

# ggml tensor types used here.
GGML_F32 = 0
GGML_F16 = 1
_TENSOR_DTYPES = {GGML_F32: np.dtype("<f4"), GGML_F16: np.dtype("<f2")}


class Typed:
    """A metadata value with an explicit GGUF type (for writing)."""

    def __init__(self, gguf_type, value, element_type=None):
        self.gguf_type = gguf_type
        self.value = value
        self.element_type = element_type  # for arrays


class _Cursor:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"GGUF truncated: need {n} bytes at offset {self.pos}, file has {len(self.data)}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.scalar("<Q")).decode("utf-8")

    def value(self, vtype):
        if vtype in _SCALAR_FORMATS:
            return self.scalar(_SCALAR_FORMATS[vtype])
        if vtype == T_STRING:
            return self.string()
        if vtype == T_ARRAY:
            etype = self.scalar("<I")
            count = self.scalar("<Q")
            return [self.value(etype) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {vtype} at offset {self.pos}")


class GGUFFile:
    """A parsed GGUF file: .metadata (dict), .value_types (dict key -> type),
    .tensors (dict name -> numpy array, row-major, reversed ggml dims),
    .tensor_types (name -> ggml type), .tensor_ne (name -> ggml ne tuple)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        cur = _Cursor(data)
        if cur.take(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file (bad magic)")
        version = cur.scalar("<I")
        if version != GGUF_VERSION:
            raise ValueError(f"{path}: expected GGUF version 3, found {version}")
        n_tensors = cur.scalar("<Q")
        n_kv = cur.scalar("<Q")
        self.metadata = {}
        self.value_types = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.scalar("<I")
            self.metadata[key] = cur.value(vtype)
            self.value_types[key] = vtype
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.scalar("<I")
            ne = tuple(cur.scalar("<Q") for _ in range(n_dims))
            ttype = cur.scalar("<I")
            offset = cur.scalar("<Q")
            infos.append((name, ne, ttype, offset))
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        data_start = (cur.pos + alignment - 1) // alignment * alignment
        self.tensors = {}
        self.tensor_types = {}
        self.tensor_ne = {}
        for name, ne, ttype, offset in infos:
            if ttype not in _TENSOR_DTYPES:
                raise ValueError(f"tensor {name}: unsupported ggml type {ttype} (only F32/F16)")
            dtype = _TENSOR_DTYPES[ttype]
            count = int(np.prod(ne)) if ne else 1
            start = data_start + offset
            end = start + count * dtype.itemsize
            if end > len(data):
                raise ValueError(f"tensor {name}: data [{start},{end}) past end of file ({len(data)})")
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=start)
            self.tensors[name] = arr.reshape(tuple(reversed(ne)))
            self.tensor_types[name] = ttype
            self.tensor_ne[name] = ne


def _infer_type(value):
    if isinstance(value, Typed):
        return value.gguf_type
    if isinstance(value, bool):
        return T_BOOL
    if isinstance(value, int):
        return T_UINT32 if value >= 0 else T_INT32
    if isinstance(value, float):
        return T_FLOAT32
    if isinstance(value, str):
        return T_STRING
    if isinstance(value, (list, tuple)):
        return T_ARRAY
    raise TypeError(f"cannot infer a GGUF type for {value!r}")


def _pack_string(s):
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _pack_value(vtype, value, element_type=None):
    if vtype in _SCALAR_FORMATS:
        return struct.pack(_SCALAR_FORMATS[vtype], value)
    if vtype == T_STRING:
        return _pack_string(value)
    if vtype == T_ARRAY:
        if element_type is None:
            element_type = _infer_type(value[0]) if value else T_UINT32
        out = [struct.pack("<IQ", element_type, len(value))]
        out.extend(_pack_value(element_type, v) for v in value)
        return b"".join(out)
    raise ValueError(f"unknown GGUF value type {vtype}")


def write_gguf(path, metadata, tensors):
    """metadata: ordered dict key -> python value or Typed.
    tensors: ordered list of (name, numpy array row-major, ggml type). The ggml
    ne is the reversed numpy shape (use arrays shaped like GGUFFile returns)."""
    alignment = DEFAULT_ALIGNMENT
    header = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(metadata))]
    for key, value in metadata.items():
        vtype = _infer_type(value)
        element_type = value.element_type if isinstance(value, Typed) else None
        raw = value.value if isinstance(value, Typed) else value
        header.append(_pack_string(key) + struct.pack("<I", vtype) + _pack_value(vtype, raw, element_type))
    blobs = []
    offset = 0
    for name, array, ttype in tensors:
        dtype = _TENSOR_DTYPES[ttype]
        blob = np.ascontiguousarray(array, dtype=dtype).tobytes()
        ne = tuple(reversed(array.shape))
        header.append(_pack_string(name) + struct.pack("<I", len(ne)) +
                      b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", ttype, offset))
        pad = (-len(blob)) % alignment
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    head = b"".join(header)
    head += b"\0" * ((-len(head)) % alignment)
    with open(path, "wb") as f:
        f.write(head)
        for blob in blobs:
            f.write(blob)
