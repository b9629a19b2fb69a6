import Testing

@testable import PGNodeModel

@Suite("JSON values, writer and parser")
struct JSONTests {
    @Test("objects keep insertion order; setting an existing key keeps its place")
    func order() {
        var object: JSONObject = ["b": 1, "a": 2]
        object["c"] = 3
        object["b"] = 4
        #expect(object.keys == ["b", "a", "c"])
        object["a"] = nil
        #expect(JSONWriter.string(.object(object)) == #"{"b":4,"c":3}"#)
    }

    @Test("strings are escaped, control characters as \\u00XX")
    func escaping() {
        let value: JSONValue = .string("a\"b\\c\nd\u{1}e/é")
        #expect(JSONWriter.string(value) == #""a\"b\\c\nd\u0001e/é""#)
    }

    @Test("numbers: exact integers, finite doubles, no NaN")
    func numbers() {
        #expect(JSONWriter.string(.int(Int64.max)) == "9223372036854775807")
        #expect(JSONWriter.string(.double(2.5)) == "2.5")
        #expect(JSONWriter.string(.double(3)) == "3")
        #expect(JSONWriter.string(.double(.nan)) == "null")
        #expect(JSONWriter.string(.double(.infinity)) == "null")
    }

    @Test("round trip through the parser")
    func roundTrip() throws {
        let text = #"{"a":[1,-2,3.5,true,false,null,"x\u00e9\ud83d\ude00"],"b":{"c":{}},"d":[],"e":1e3}"#
        let value = try JSONParser.parse(text)
        #expect(value["a"]?.arrayValue?.count == 7)
        #expect(value["a"]?.arrayValue?[6].stringValue == "xé😀")
        #expect(value["e"] == .double(1000))
        let again = try JSONParser.parse(JSONWriter.string(value))
        #expect(again == value)
    }

    @Test(
        "malformed JSON is a clear error",
        arguments: [
            "", " ", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "tru", "nul", "01", "1.", "1e", "-",
            "\"abc", "\"\\x\"", "\"\\u12\"", "[1 2]", "{\"a\":1,}", "1 2", "\"a\u{1}b\"",
            String(repeating: "[", count: 10_000),
        ]
    )
    func malformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("an object with 30,000 keys (runtime state labels): every key found through the hash index, order kept")
    func manyKeys() throws {
        let count = 30_000
        let members = (0..<count).map { "\"io.example/label-\($0)\":\"v\($0)\"" }
        let text = "{\"annotations\":{" + members.joined(separator: ",") + "}}"
        let value = try JSONParser.parse(text)
        let labels = try #require(value["annotations"]?.objectValue)
        #expect(labels.isIndexed)
        #expect(labels.members.count == count)
        #expect(labels.keys == (0..<count).map { "io.example/label-\($0)" })
        #expect((0..<count).allSatisfy { labels["io.example/label-\($0)"] == .string("v\($0)") })
        #expect(labels["io.example/label-\(count)"] == nil)
        #expect(JSONWriter.string(value) == text)  // the writer keeps the order
    }

    @Test("duplicate keys: the first place, the last value — with or without the index")
    func duplicateKeys() throws {
        #expect(JSONWriter.string(try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#)) == #"{"a":3,"b":2}"#)
        let unique = 1000
        var members = (0..<unique).map { "\"k\($0)\":\($0)" }
        members += (0..<unique).filter { $0 % 3 == 0 }.map { "\"k\($0)\":-\($0)" }
        let object = try #require(JSONParser.parse("{" + members.joined(separator: ",") + "}").objectValue)
        #expect(object.isIndexed)
        #expect(object.keys == (0..<unique).map { "k\($0)" })
        #expect((0..<unique).allSatisfy { object["k\($0)"] == .int(Int64($0 % 3 == 0 ? -$0 : $0)) })
    }

    @Test("removing and re-adding members of an indexed object keeps lookups and order right")
    func indexedRemoval() {
        var object = JSONObject()
        for i in 0..<100 { object["k\(i)"] = .int(Int64(i)) }
        #expect(object.isIndexed)
        for i in stride(from: 0, to: 100, by: 2) { object["k\(i)"] = nil }
        object["k1"] = "one"
        object["k0"] = "zero"
        #expect(object.keys == stride(from: 1, to: 100, by: 2).map { "k\($0)" } + ["k0"])
        #expect(object["k1"] == "one")
        #expect(object["k0"] == "zero")
        #expect(object["k2"] == nil)
        #expect(stride(from: 3, to: 100, by: 2).allSatisfy { object["k\($0)"] == .int(Int64($0)) })
        // Equality is by members in order, not by how lookups are done.
        var small = JSONObject()
        for key in object.keys { small[key] = object[key] }
        #expect(small == object)
    }

    @Test("keys are compared as Swift strings are, the same with and without the index")
    func canonicalKeys() throws {
        let composed = "\u{E9}"  // é
        let decomposed = "e\u{301}"  // e + combining acute accent
        var small: JSONObject = [composed: 1]
        small[decomposed] = 2
        var large = JSONObject()
        for i in 0..<50 { large["k\(i)"] = .int(Int64(i)) }
        large[composed] = 1
        large[decomposed] = 2
        #expect(small.keys.count == 1 && small[composed] == 2)
        #expect(large.keys.count == 51 && large[composed] == 2)
    }

    @Test("a text larger than the parser's bound is refused before parsing")
    func sizeBound() throws {
        let text = "\"" + String(repeating: "a", count: JSONParser.maxBytes) + "\""
        #expect(throws: JSONParseError(message: "text larger than \(JSONParser.maxBytes) bytes", offset: 0)) {
            try JSONParser.parse(text)
        }
        let deep = String(repeating: "[", count: JSONParser.maxDepth + 1) + String(repeating: "]", count: 257)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let deepest = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: 256)
        #expect(try JSONParser.parse(deepest).arrayValue?.count == 1)
    }

    @Test("huge integers fall back to doubles")
    func hugeNumbers() throws {
        #expect(try JSONParser.parse("123456789012345678901234567890") == .double(1.2345678901234568e29))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
    }
}

@Suite("SHA-256 and finding ids")
struct HashTests {
    @Test("FIPS 180-4 test vectors")
    func vectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("ids are stable for the same node, container, check and window, and differ otherwise")
    func ids() {
        let w = Timestamp(nanoseconds: 1_700_000_000_000_000_000)
        let a = FindingID.make(node: "n1", container: "c1", check: "shm.size", windowStart: w)
        #expect(a == FindingID.make(node: "n1", container: "c1", check: "shm.size", windowStart: w))
        #expect(a.count == 32)
        #expect(a != FindingID.make(node: "n2", container: "c1", check: "shm.size", windowStart: w))
        #expect(a != FindingID.make(node: "n1", container: nil, check: "shm.size", windowStart: w))
        #expect(a != FindingID.make(node: "n1", container: "c1", check: "shm.enospc", windowStart: w))
        #expect(
            a != FindingID.make(node: "n1", container: "c1", check: "shm.size", windowStart: Timestamp(nanoseconds: 1)))
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test(
        "RFC 3339 UTC with milliseconds",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (Int64(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z"),
            (Int64(1_795_132_799_999_999_999), "2026-11-19T23:59:59.999Z"),
            (Int64(-1_000_000), "1969-12-31T23:59:59.999Z"),
        ])
    func format(nanoseconds: Int64, expected: String) {
        #expect(Timestamp(nanoseconds: nanoseconds).rfc3339 == expected)
    }
}

@Suite("Severities and findings")
struct FindingTests {
    @Test("ordering for --fail-on; unavailable is outside it")
    func ordering() {
        #expect(Severity.critical.isAtLeast(.warning))
        #expect(Severity.warning.isAtLeast(.warning))
        #expect(!Severity.info.isAtLeast(.warning))
        #expect(!Severity.unavailable.isAtLeast(.info))
        #expect(Severity.worst(.ok, .critical) == .critical)
        #expect(Severity.worst(.unavailable, .ok) == .ok)
    }

    @Test("a node finding has the schema's keys in order and only k8s.node.name")
    func nodeFinding() throws {
        let observation = Observation(
            check: "kernel.btf", severity: .critical, summary: "No BTF.", evidence: ["size_bytes": 0],
            remedy: "Install one.")
        let finding = Finding(
            observation: observation, resource: ResourceAttributes(nodeName: "node-a"),
            windowStart: Timestamp(nanoseconds: 0), time: Timestamp(nanoseconds: 1_000_000_000))
        let object = try #require(finding.json.objectValue)
        #expect(
            object.keys == ["schema", "id", "time", "check", "severity", "summary", "resource", "evidence", "remedy"])
        #expect(object["resource"]?.objectValue?.keys == ["k8s.node.name"])
        #expect(object["time"]?.stringValue == "1970-01-01T00:00:01.000Z")
        #expect(try JSONParser.parse(finding.jsonLine) == finding.json)
    }

    @Test("a container finding writes unknown metadata as null, never invented")
    func containerFinding() {
        let resource = ResourceAttributes(
            nodeName: "n", containerID: String(repeating: "a", count: 64), containerRuntime: "containerd",
            podName: nil, podUID: nil, namespace: nil, containerName: nil)
        let keys = resource.json.keys
        #expect(keys.count == 7)
        #expect(resource.json["k8s.pod.name"] == .null)
    }

    @Test("ok findings carry no remedy; unavailable carries its reason")
    func remedies() {
        #expect(Observation(check: "x", severity: .ok, summary: "s", remedy: "ignored").remedy == "")
        let u = Observation.unavailable(check: "memory.reclaim", reason: "no CAP_BPF")
        #expect(u.severity == .unavailable)
        #expect(u.evidence["reason"] == "no CAP_BPF")
    }

    @Test("log2 histogram buckets")
    func histogram() throws {
        let h = Log2Histogram(counts: [1, 0, 3, 0, 5])
        let buckets = h.buckets
        #expect(buckets.map(\.low) == [0, 4, 16])
        #expect(buckets.map(\.high) == [1, 7, 31])
        let back = try #require(Log2Histogram.buckets(from: h.json))
        #expect(back.map(\.count) == [1, 3, 5])
        #expect(Log2Histogram.buckets(from: .array([["low": 1]])) == nil)
    }
}
