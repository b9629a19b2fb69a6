/// A JSON value whose objects keep their keys in insertion order, so that findings
/// print with a stable, readable layout. Integers are kept exact (64-bit), not as doubles.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// Equality by JSON meaning: `1000` and `1e3` are the same number.
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.int(let a), .double(let b)), (.double(let b), .int(let a)): return Double(a) == b && b.rounded() == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }

    /// The value under `key` when this is an object, else nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// The string when this is a string, else nil.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The integer when this is an integer (or a double without a fraction), else nil.
    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: return Int64(d)
        default: return nil
        }
    }

    /// The number as a double, an integer one too; nil when this is not a number.
    public var doubleValue: Double? {
        switch self {
        case .double(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }

    /// The array when this is an array, else nil.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The object when this is an object, else nil.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }
}

/// A JSON object that keeps its keys in the order they were set.
///
/// Small objects (most of a finding's) find a key by scanning their few members; past
/// `indexThreshold` members the object also keeps a hash index from key to position, so setting
/// or reading a key stays O(1) amortized however many members it has (a runtime state file with
/// tens of thousands of labels). Keys compare as Swift strings do (canonical equivalence), the same
/// with or without the index.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    /// The members, in order; keys are unique.
    public private(set) var members: [(key: String, value: JSONValue)] = []
    /// The position of each key in `members`, once there are more than `indexThreshold` members.
    private var positions: [String: Int]?

    /// How many members an object holds before it builds its index.
    static let indexThreshold = 16

    /// An empty object.
    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    /// Whether lookups go through the hash index (for tests).
    var isIndexed: Bool { positions != nil }

    /// Where `key` is in `members`.
    private func position(of key: String) -> Int? {
        if let positions { return positions[key] }
        return members.firstIndex(where: { $0.key == key })
    }

    /// Reads or sets a member; setting nil removes it, setting an existing key keeps its place.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let index = position(of: key) {
                if let newValue {
                    members[index].value = newValue
                } else {
                    remove(at: index)
                }
            } else if let newValue {
                members.append((key, newValue))
                if positions != nil {
                    positions?[key] = members.count - 1
                } else if members.count > Self.indexThreshold {
                    buildIndex()
                }
            }
        }
    }

    /// Removes the member at `index`; the members after it move up one place.
    private mutating func remove(at index: Int) {
        let removed = members.remove(at: index)
        guard positions != nil else { return }
        positions?[removed.key] = nil
        for later in index..<members.count { positions?[members[later].key] = later }
    }

    private mutating func buildIndex() {
        var index: [String: Int] = [:]
        index.reserveCapacity(members.count * 2)
        for (position, member) in members.enumerated() { index[member.key] = position }
        positions = index
    }

    /// The keys, in order.
    public var keys: [String] { members.map(\.key) }

    /// Whether the object has no members.
    public var isEmpty: Bool { members.isEmpty }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByNilLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var object = JSONObject()
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

extension JSONValue {
    /// A string, or null when nil.
    public static func from(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }
    /// An integer, or null when nil.
    public static func from<T: BinaryInteger>(_ value: T?) -> JSONValue {
        guard let value else { return .null }
        return .int(Int64(clamping: value))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The value as compact JSON text (`JSONWriter.string`): what logs and test messages show.
    public var description: String { JSONWriter.string(self) }
}

extension JSONObject: CustomStringConvertible {
    /// The object as compact JSON text, its members in order.
    public var description: String { JSONWriter.string(.object(self)) }
}
