#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "gguf/gguf.h"
#include "util/error.h"

namespace flatline::gguf {

namespace {

constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // a metadata string over 1 GiB is hostile
constexpr uint64_t kReserveLimit = 1u << 16;              // entries reserved up front, whatever a count says

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::Float64); }

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::UInt8: return "uint8";
    case ValueType::Int8: return "int8";
    case ValueType::UInt16: return "uint16";
    case ValueType::Int16: return "int16";
    case ValueType::UInt32: return "uint32";
    case ValueType::Int32: return "int32";
    case ValueType::Float32: return "float32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::UInt64: return "uint64";
    case ValueType::Int64: return "int64";
    case ValueType::Float64: return "float64";
  }
  return "unknown";
}

size_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::UInt8:
    case ValueType::Int8:
    case ValueType::Bool: return 1;
    case ValueType::UInt16:
    case ValueType::Int16: return 2;
    case ValueType::UInt32:
    case ValueType::Int32:
    case ValueType::Float32: return 4;
    case ValueType::UInt64:
    case ValueType::Int64:
    case ValueType::Float64: return 8;
    default: return 0;
  }
}

// ---------------------------------------------------------------------------
// Parser: a bounds-checked cursor over the file bytes.
class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  void parse_into(File& f) {
    f.bytes_ = bytes_;
    f.name_ = name_;
    if (bytes_.size() < 24)
      fail("file is " + std::to_string(bytes_.size()) + " bytes, too short for a GGUF header (24 bytes)");
    uint32_t magic = u32("magic");
    if (magic != kMagic) {
      std::ostringstream os;
      os << "not a GGUF file: magic is 0x" << std::hex << magic << ", expected 0x" << kMagic << " (\"GGUF\")";
      fail(os.str());
    }
    f.version_ = u32("version");
    if (f.version_ == 1) fail("GGUF version 1 is not supported (only versions 2 and 3); re-convert the model");
    if (f.version_ != 2 && f.version_ != 3) {
      if (f.version_ > 0xffff) fail("GGUF version " + std::to_string(f.version_) + " looks byte-swapped: big-endian files are not supported");
      fail("unsupported GGUF version " + std::to_string(f.version_) + " (supported: 2, 3)");
    }
    uint64_t n_tensors = u64("tensor count");
    uint64_t n_kv = u64("metadata count");
    // Every KV needs at least 8 (key len) + 4 (type) + 1 bytes; every tensor
    // info at least 8 + 4 + 8 + 4 + 8. Counts larger than that are lies.
    if (n_kv > remaining() / 13)
      fail("metadata count " + std::to_string(n_kv) + " is larger than the file can hold");
    if (n_tensors > remaining() / 32)
      fail("tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

    // The counts are bounded by the file size, but a lying header should
    // not make us reserve for them: reserve a plausible amount and let the
    // vectors grow as entries are actually found.
    f.metadata_.reserve(std::min<uint64_t>(n_kv, kReserveLimit));
    for (uint64_t i = 0; i < n_kv; ++i) parse_kv(f, i);

    if (const Value* a = f.find("general.alignment")) {
      if (a->type() != ValueType::UInt32)
        fail(std::string("general.alignment must be uint32, found ") + value_type_name(a->type()));
      uint64_t align = a->as_uint();
      if (align == 0 || (align & (align - 1)) != 0)
        fail("general.alignment " + std::to_string(align) + " is not a power of two");
      f.alignment_ = align;
    }

    f.tensors_.reserve(std::min<uint64_t>(n_tensors, kReserveLimit));
    for (uint64_t i = 0; i < n_tensors; ++i) parse_tensor_info(f, i);

    uint64_t data_offset = align_up(pos_, f.alignment_, "data section");
    if (n_tensors > 0 && data_offset > bytes_.size())
      fail("file ends at byte " + std::to_string(bytes_.size()) + " before its data section (byte " +
           std::to_string(data_offset) + "): truncated");
    f.data_offset_ = data_offset;
    uint64_t data_size = bytes_.size() > data_offset ? bytes_.size() - data_offset : 0;
    for (TensorInfo& t : f.tensors_) {
      if (t.offset % f.alignment_ != 0)
        fail("tensor " + t.name + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(f.alignment_));
      if (t.offset > data_size || t.n_bytes > data_size - t.offset)
        fail("tensor " + t.name + ": data [" + std::to_string(t.offset) + ", " + std::to_string(t.offset + t.n_bytes) +
             ") lies outside the data section of " + std::to_string(data_size) + " bytes (file truncated?)");
      t.data = bytes_.data() + data_offset + t.offset;
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(name_ + ": invalid GGUF: " + what); }

  uint64_t remaining() const { return bytes_.size() - pos_; }

  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > remaining())
      fail("unexpected end of file reading " + what + " at byte " + std::to_string(pos_) + " (need " +
           std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)");
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32(const std::string& what) { return load<uint32_t>(take(4, what)); }
  uint64_t u64(const std::string& what) { return load<uint64_t>(take(8, what)); }

  std::string_view str(const std::string& what) {
    uint64_t len = u64(what + " length");
    if (len > kMaxStringBytes) fail(what + " length " + std::to_string(len) + " is implausibly large");
    const uint8_t* p = take(len, what);
    return {reinterpret_cast<const char*>(p), static_cast<size_t>(len)};
  }

  uint64_t align_up(uint64_t v, uint64_t align, const std::string& what) const {
    if (v > std::numeric_limits<uint64_t>::max() - align) fail(what + " offset overflows");
    return (v + align - 1) / align * align;
  }

  void parse_kv(File& f, uint64_t index) {
    std::string where = "metadata entry " + std::to_string(index);
    std::string_view key = str(where + " key");
    if (key.empty()) fail(where + " has an empty key");
    where = "metadata key '" + std::string(key) + "'";
    uint32_t type = u32(where + " type");
    if (!valid_value_type(type)) fail(where + " has unknown value type " + std::to_string(type));
    Value v;
    v.key_ = key;
    v.type_ = static_cast<ValueType>(type);
    if (v.type_ == ValueType::String) {
      v.strings_.push_back(str(where));
    } else if (v.type_ == ValueType::Array) {
      uint32_t elem = u32(where + " array element type");
      if (!valid_value_type(elem)) fail(where + " has unknown array element type " + std::to_string(elem));
      v.array_type_ = static_cast<ValueType>(elem);
      if (v.array_type_ == ValueType::Array) fail(where + ": nested arrays are not supported");
      v.count_ = u64(where + " array length");
      if (v.array_type_ == ValueType::String) {
        // Each string needs at least its 8-byte length.
        if (v.count_ > remaining() / 8) fail(where + " array length " + std::to_string(v.count_) + " exceeds the file");
        v.strings_.reserve(std::min<uint64_t>(v.count_, kReserveLimit));
        for (uint64_t i = 0; i < v.count_; ++i) v.strings_.push_back(str(where + "[" + std::to_string(i) + "]"));
      } else {
        uint64_t es = scalar_size(v.array_type_);
        if (v.count_ > remaining() / es) fail(where + " array of " + std::to_string(v.count_) + " elements exceeds the file");
        v.raw_ = take(v.count_ * es, where);
      }
    } else {
      v.raw_ = take(scalar_size(v.type_), where);
      if (v.type_ == ValueType::Bool && *v.raw_ > 1) fail(where + " is a bool with value " + std::to_string(*v.raw_));
    }
    std::string key_str(key);
    if (f.metadata_index_.count(key_str)) fail("duplicate metadata key '" + key_str + "'");
    f.metadata_index_.emplace(key_str, f.metadata_.size());
    f.metadata_.emplace_back(std::move(key_str), std::move(v));
  }

  void parse_tensor_info(File& f, uint64_t index) {
    std::string where = "tensor info " + std::to_string(index);
    TensorInfo t;
    t.name = std::string(str(where + " name"));
    if (t.name.empty()) fail(where + " has an empty name");
    where = "tensor " + t.name;
    uint32_t n_dims = u32(where + " dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail(where + ": " + std::to_string(n_dims) + " dimensions, expected 1 to " + std::to_string(kMaxDims));
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = u64(where + " dimension");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + ": dimension " + std::to_string(d) + " is negative or too large");
      int64_t ne = static_cast<int64_t>(dim);
      if (ne != 0 && n_elements > std::numeric_limits<int64_t>::max() / ne)
        fail(where + ": element count overflows");
      n_elements *= ne;
      t.dims.push_back(ne);
    }
    uint32_t type_id = u32(where + " type");
    auto tr = dtype_traits(type_id);
    if (!tr) fail(where + " has unknown tensor type id " + std::to_string(type_id));
    t.type = static_cast<DType>(type_id);
    if (t.dims[0] % tr->block_size != 0)
      fail(where + ": row length " + std::to_string(t.dims[0]) + " is not a multiple of the " + tr->name +
           " block size " + std::to_string(tr->block_size));
    uint64_t blocks = static_cast<uint64_t>(n_elements / tr->block_size);
    if (tr->block_bytes != 0 && blocks > std::numeric_limits<uint64_t>::max() / tr->block_bytes)
      fail(where + ": byte size overflows");
    t.n_bytes = blocks * tr->block_bytes;
    t.offset = u64(where + " offset");
    if (f.tensor_index_.count(t.name)) fail("duplicate tensor name '" + t.name + "'");
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  uint64_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// Value

bool Value::is_integer() const {
  switch (type_) {
    case ValueType::UInt8:
    case ValueType::Int8:
    case ValueType::UInt16:
    case ValueType::Int16:
    case ValueType::UInt32:
    case ValueType::Int32:
    case ValueType::UInt64:
    case ValueType::Int64: return true;
    default: return false;
  }
}

bool Value::is_number() const {
  return is_integer() || type_ == ValueType::Float32 || type_ == ValueType::Float64;
}

namespace {

int64_t read_int(ValueType t, const uint8_t* p, std::string_view key) {
  switch (t) {
    case ValueType::UInt8: return load<uint8_t>(p);
    case ValueType::Int8: return load<int8_t>(p);
    case ValueType::UInt16: return load<uint16_t>(p);
    case ValueType::Int16: return load<int16_t>(p);
    case ValueType::UInt32: return load<uint32_t>(p);
    case ValueType::Int32: return load<int32_t>(p);
    case ValueType::Bool: return load<uint8_t>(p) != 0;
    case ValueType::Int64: return load<int64_t>(p);
    case ValueType::UInt64: {
      uint64_t v = load<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error("metadata " + std::string(key) + ": value " + std::to_string(v) + " does not fit in int64");
      return static_cast<int64_t>(v);
    }
    default:
      throw Error("metadata " + std::string(key) + ": expected an integer, found " + value_type_name(t));
  }
}

double read_float(ValueType t, const uint8_t* p, std::string_view key) {
  if (t == ValueType::Float32) return load<float>(p);
  if (t == ValueType::Float64) return load<double>(p);
  if (t == ValueType::UInt64) return static_cast<double>(load<uint64_t>(p));
  return static_cast<double>(read_int(t, p, key));
}

}  // namespace

int64_t Value::as_int() const {
  if (is_array()) throw Error("metadata " + std::string(key_) + ": expected an integer, found an array");
  if (type_ == ValueType::String) throw Error("metadata " + std::string(key_) + ": expected an integer, found a string");
  if (type_ == ValueType::Float32 || type_ == ValueType::Float64)
    throw Error("metadata " + std::string(key_) + ": expected an integer, found " + value_type_name(type_));
  return read_int(type_, raw_, key_);
}

uint64_t Value::as_uint() const {
  if (type_ == ValueType::UInt64) return load<uint64_t>(raw_);
  int64_t v = as_int();
  if (v < 0) throw Error("metadata " + std::string(key_) + ": expected a non-negative integer, found " + std::to_string(v));
  return static_cast<uint64_t>(v);
}

double Value::as_float() const {
  if (!is_number()) throw Error("metadata " + std::string(key_) + ": expected a number, found " + value_type_name(type_));
  return read_float(type_, raw_, key_);
}

bool Value::as_bool() const {
  if (type_ == ValueType::Bool) return *raw_ != 0;
  if (is_integer()) return as_int() != 0;
  throw Error("metadata " + std::string(key_) + ": expected a bool, found " + value_type_name(type_));
}

std::string_view Value::as_string() const {
  if (type_ != ValueType::String)
    throw Error("metadata " + std::string(key_) + ": expected a string, found " + value_type_name(type_));
  return strings_[0];
}

namespace {
void check_array(const Value& v, uint64_t i, std::string_view key) {
  if (!v.is_array()) throw Error("metadata " + std::string(key) + ": expected an array");
  if (i >= v.array_size())
    throw Error("metadata " + std::string(key) + ": index " + std::to_string(i) + " out of range " +
                std::to_string(v.array_size()));
}
}  // namespace

int64_t Value::int_at(uint64_t i) const {
  check_array(*this, i, key_);
  if (array_type_ == ValueType::String || array_type_ == ValueType::Float32 || array_type_ == ValueType::Float64)
    throw Error("metadata " + std::string(key_) + ": expected an integer array, found " + value_type_name(array_type_));
  return read_int(array_type_, raw_ + i * scalar_size(array_type_), key_);
}

double Value::float_at(uint64_t i) const {
  check_array(*this, i, key_);
  if (array_type_ == ValueType::String)
    throw Error("metadata " + std::string(key_) + ": expected a numeric array, found strings");
  return read_float(array_type_, raw_ + i * scalar_size(array_type_), key_);
}

std::string_view Value::string_at(uint64_t i) const {
  check_array(*this, i, key_);
  if (array_type_ != ValueType::String)
    throw Error("metadata " + std::string(key_) + ": expected a string array, found " + value_type_name(array_type_));
  return strings_[i];
}

std::vector<int64_t> Value::int_array() const {
  std::vector<int64_t> out;
  if (!is_array()) {
    out.push_back(as_int());  // a scalar where a per-layer array is allowed
    return out;
  }
  out.reserve(count_);
  for (uint64_t i = 0; i < count_; ++i) out.push_back(int_at(i));
  return out;
}

std::vector<float> Value::float_array() const {
  std::vector<float> out;
  if (!is_array()) {
    out.push_back(static_cast<float>(as_float()));
    return out;
  }
  out.reserve(count_);
  for (uint64_t i = 0; i < count_; ++i) out.push_back(static_cast<float>(float_at(i)));
  return out;
}

std::vector<std::string_view> Value::string_array() const {
  if (!is_array() || array_type_ != ValueType::String)
    throw Error("metadata " + std::string(key_) + ": expected an array of strings");
  return strings_;
}

namespace {
std::string quote(std::string_view s, size_t max_len = 80) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    char c = s[i];
    if (c == '\n') out += "\\n";
    else if (c == '"') out += "\\\"";
    else out += c;
  }
  if (s.size() > max_len) out += "...";
  return out + "\"";
}
}  // namespace

std::string Value::to_string(size_t max_items) const {
  std::ostringstream os;
  auto scalar = [&](ValueType t, const uint8_t* p) {
    if (t == ValueType::Bool) os << (*p ? "true" : "false");
    else if (t == ValueType::Float32 || t == ValueType::Float64) os << read_float(t, p, key_);
    else if (t == ValueType::UInt64) os << load<uint64_t>(p);
    else os << read_int(t, p, key_);
  };
  if (type_ == ValueType::String) return quote(strings_[0]);
  if (!is_array()) {
    scalar(type_, raw_);
    return os.str();
  }
  os << "[";
  for (uint64_t i = 0; i < count_ && i < max_items; ++i) {
    if (i) os << ", ";
    if (array_type_ == ValueType::String) os << quote(strings_[i], 24);
    else scalar(array_type_, raw_ + i * scalar_size(array_type_));
  }
  if (count_ > max_items) os << ", ... (" << count_ << " " << value_type_name(array_type_) << ")";
  os << "]";
  return os.str();
}

// ---------------------------------------------------------------------------
// TensorInfo

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t TensorInfo::rows() const {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "{";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "}";
}

// ---------------------------------------------------------------------------
// File

File File::open(const std::string& path) {
  auto mapping = std::make_unique<MappedFile>(path);
  File f;
  Parser(mapping->bytes(), path).parse_into(f);
  f.mapping_ = std::move(mapping);
  return f;
}

File File::parse(std::span<const uint8_t> bytes, const std::string& display_name) {
  File f;
  Parser(bytes, display_name).parse_into(f);
  return f;
}

const Value* File::find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const Value& File::get(std::string_view key) const {
  const Value* v = find(key);
  if (!v) throw Error(name_ + ": missing metadata key " + std::string(key));
  return *v;
}

std::string File::get_string(std::string_view key) const { return std::string(get(key).as_string()); }
std::string File::get_string(std::string_view key, const std::string& fallback) const {
  const Value* v = find(key);
  return v ? std::string(v->as_string()) : fallback;
}
int64_t File::get_int(std::string_view key) const { return get(key).as_int(); }
int64_t File::get_int(std::string_view key, int64_t fallback) const {
  const Value* v = find(key);
  return v ? v->as_int() : fallback;
}
double File::get_float(std::string_view key) const { return get(key).as_float(); }
double File::get_float(std::string_view key, double fallback) const {
  const Value* v = find(key);
  return v ? v->as_float() : fallback;
}
bool File::get_bool(std::string_view key, bool fallback) const {
  const Value* v = find(key);
  return v ? v->as_bool() : fallback;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) throw Error(name_ + ": missing tensor " + std::string(name));
  return *t;
}

}  // namespace flatline::gguf
