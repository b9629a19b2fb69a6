import CLibBPF
import Glibc

/// The kernel's internal "operation not supported" (524), which reaches user space from the bpf syscall.
private let kernelENOTSUPP: Int32 = 524

/// A map of a loaded `BPFObject`, with typed access. Keys and values are plain C structs
/// (from pgnode_probe_types.h) or integers; their sizes are checked against the map's.
/// Keeps its object alive; not `Sendable`, like the object.
public struct BPFMap {
    let map: OpaquePointer
    /// The map's name.
    public let name: String
    let owner: BPFObject

    /// The map's file descriptor.
    public var fd: Int32 { bpf_map__fd(map) }
    /// Key size in bytes.
    public var keySize: Int { Int(bpf_map__key_size(map)) }
    /// Value size in bytes (per CPU for per-CPU maps).
    public var valueSize: Int { Int(bpf_map__value_size(map)) }
    /// Maximum number of entries.
    public var maxEntries: Int { Int(bpf_map__max_entries(map)) }
    /// Whether values are kept per CPU.
    public var isPerCPU: Bool {
        switch bpf_map__type(map) {
        case BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH: true
        default: false
        }
    }

    /// The number of possible CPUs (per-CPU maps hold one value for each).
    public static var possibleCPUs: Int { Int(max(libbpf_num_possible_cpus(), 1)) }

    private func checkKey<K>(_: K.Type) throws(BPFError) {
        guard MemoryLayout<K>.size == keySize else {
            throw .sizeMismatch(map: name, what: "key", expected: keySize, actual: MemoryLayout<K>.size)
        }
    }

    private func checkValue<V>(_: V.Type) throws(BPFError) {
        guard MemoryLayout<V>.size == valueSize else {
            throw .sizeMismatch(map: name, what: "value", expected: valueSize, actual: MemoryLayout<V>.size)
        }
    }

    /// The value stored under `key`, or nil when there is none.
    public func lookup<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, as _: V.Type = V.self) throws(BPFError) -> V? {
        try checkKey(K.self)
        try checkValue(V.self)
        guard !isPerCPU else {
            throw .map(map: name, operation: "lookup (per-CPU map: use lookupPerCPU)", errno: EINVAL)
        }
        var key = key
        let value = UnsafeMutablePointer<V>.allocate(capacity: 1)
        defer { value.deallocate() }
        let rc = withUnsafeBytes(of: &key) { k in
            bpf_map__lookup_elem(map, k.baseAddress, k.count, value, MemoryLayout<V>.size, 0)
        }
        if rc == -ENOENT { return nil }
        guard rc == 0 else { throw .map(map: name, operation: "lookup", errno: -rc) }
        return value.pointee
    }

    /// The per-CPU values stored under `key` (one per possible CPU), or nil when there is none.
    public func lookupPerCPU<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, as _: V.Type = V.self) throws(BPFError)
        -> [V]?
    {
        try checkKey(K.self)
        try checkValue(V.self)
        let stride = (valueSize + 7) & ~7
        guard MemoryLayout<V>.stride == stride else {
            throw .sizeMismatch(
                map: name, what: "per-CPU value stride", expected: stride, actual: MemoryLayout<V>.stride)
        }
        let cpus = Self.possibleCPUs
        var key = key
        let values = UnsafeMutablePointer<V>.allocate(capacity: cpus)
        defer { values.deallocate() }
        let rc = withUnsafeBytes(of: &key) { k in
            bpf_map__lookup_elem(map, k.baseAddress, k.count, values, stride * cpus, 0)
        }
        if rc == -ENOENT { return nil }
        guard rc == 0 else { throw .map(map: name, operation: "lookup", errno: -rc) }
        return Array(UnsafeBufferPointer(start: values, count: cpus))
    }

    /// Stores `value` under `key` (`BPF_ANY`: create or replace).
    public func update<K: BitwiseCopyable, V: BitwiseCopyable>(_ key: K, _ value: V) throws(BPFError) {
        try checkKey(K.self)
        try checkValue(V.self)
        var key = key
        var value = value
        let rc = withUnsafeBytes(of: &key) { k in
            withUnsafeBytes(of: &value) { v in
                bpf_map__update_elem(map, k.baseAddress, k.count, v.baseAddress, v.count, UInt64(BPF_ANY))
            }
        }
        guard rc == 0 else { throw .map(map: name, operation: "update", errno: -rc) }
    }

    /// Removes `key`; true when it was there.
    @discardableResult
    public func delete<K: BitwiseCopyable>(_ key: K) throws(BPFError) -> Bool {
        try checkKey(K.self)
        var key = key
        let rc = withUnsafeBytes(of: &key) { k in bpf_map__delete_elem(map, k.baseAddress, k.count, 0) }
        if rc == -ENOENT { return false }
        guard rc == 0 else { throw .map(map: name, operation: "delete", errno: -rc) }
        return true
    }

    /// Every key, in the kernel's iteration order.
    public func keys<K: BitwiseCopyable>(_: K.Type = K.self) throws(BPFError) -> [K] {
        try checkKey(K.self)
        var keys: [K] = []
        let current = UnsafeMutablePointer<K>.allocate(capacity: 1)
        let next = UnsafeMutablePointer<K>.allocate(capacity: 1)
        defer {
            current.deallocate()
            next.deallocate()
        }
        var first = true
        while keys.count <= maxEntries {
            let rc = bpf_map__get_next_key(map, first ? nil : UnsafeRawPointer(current), next, MemoryLayout<K>.size)
            if rc == -ENOENT { break }
            guard rc == 0 else { throw .map(map: name, operation: "iterate", errno: -rc) }
            keys.append(next.pointee)
            current.pointee = next.pointee
            first = false
        }
        return keys
    }

    /// Every entry (entries deleted while iterating are skipped).
    public func entries<K: BitwiseCopyable, V: BitwiseCopyable>(_: K.Type = K.self, _: V.Type = V.self) throws(BPFError)
        -> [(key: K, value: V)]
    {
        var result: [(key: K, value: V)] = []
        for key in try keys(K.self) {
            if let value = try lookup(key, as: V.self) { result.append((key, value)) }
        }
        return result
    }

    /// Takes every entry out of a hash map: each key is looked up and deleted in one step
    /// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`, hash maps since 5.14), so an update that a BPF program
    /// makes between the two is not lost; on older kernels a lookup then a delete.
    public func drain<K: BitwiseCopyable, V: BitwiseCopyable>(_: K.Type = K.self, _: V.Type = V.self) throws(BPFError)
        -> [(key: K, value: V)]
    {
        try checkValue(V.self)
        guard !isPerCPU else { throw .map(map: name, operation: "drain (per-CPU map)", errno: EINVAL) }
        var result: [(key: K, value: V)] = []
        let value = UnsafeMutablePointer<V>.allocate(capacity: 1)
        defer { value.deallocate() }
        for key in try keys(K.self) {
            var key = key
            let rc = withUnsafeBytes(of: &key) { k in
                bpf_map__lookup_and_delete_elem(map, k.baseAddress, k.count, value, MemoryLayout<V>.size, 0)
            }
            if rc == 0 {
                result.append((key, value.pointee))
            } else if rc == -EINVAL || rc == -kernelENOTSUPP || rc == -EOPNOTSUPP {
                // Before 5.14 hash maps cannot do both at once.
                if let found = try lookup(key, as: V.self) {
                    try delete(key)
                    result.append((key, found))
                }
            } else if rc != -ENOENT {
                throw .map(map: name, operation: "lookup and delete", errno: -rc)
            }
        }
        return result
    }

    /// Every entry of a per-CPU map, with the values of all CPUs.
    public func perCPUEntries<K: BitwiseCopyable, V: BitwiseCopyable>(_: K.Type = K.self, _: V.Type = V.self)
        throws(BPFError) -> [(key: K, values: [V])]
    {
        var result: [(key: K, values: [V])] = []
        for key in try keys(K.self) {
            if let values = try lookupPerCPU(key, as: V.self) { result.append((key, values)) }
        }
        return result
    }
}
