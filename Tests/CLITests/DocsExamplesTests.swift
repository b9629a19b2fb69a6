import Foundation
import PGNodeModel
import TestSupport
import Testing

/// The JSON findings shown in the README and docs/ are real ones: each validates against the
/// published schema.
@Suite("Documentation examples")
struct DocsExamplesTests {
    /// The pgnode findings shown in fenced blocks of `text`: a block is parsed whole (a finding
    /// wrapped over several lines), else line by line (NDJSON). Objects of other APIs that embed a
    /// finding (an Elasticsearch document with `@timestamp`) are not findings.
    static func findings(_ text: String) -> (findings: [JSONValue], unparsed: [String]) {
        var blocks: [[Substring]] = []
        var current: [Substring]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if let block = current { blocks.append(block) }
                current = current == nil ? [] : nil
                continue
            }
            current?.append(line)
        }
        var found: [JSONValue] = []
        var unparsed: [String] = []
        func isFinding(_ value: JSONValue) -> Bool {
            value["schema"] == "pgnode.finding.v1" && value["@timestamp"] == nil
        }
        for block in blocks where block.contains(where: { $0.contains("pgnode.finding.v1") }) {
            if let whole = try? JSONParser.parse(block.joined(separator: "\n")) {
                if isFinding(whole) { found.append(whole) }
                continue
            }
            for line in block where line.hasPrefix("{") && line.contains("\"schema\":\"pgnode.finding.v1\"") {
                if let value = try? JSONParser.parse(String(line)) {
                    if isFinding(value) { found.append(value) }
                } else if !line.contains("\"@timestamp\"") {
                    unparsed.append(String(line.prefix(120)))
                }
            }
        }
        return (found, unparsed)
    }

    @Test("every finding in README.md and docs/*.md validates against docs/finding.schema.json")
    func findingsValidate() throws {
        let root = TestEnvironment.packageRoot.path
        let docs = try FileManager.default.contentsOfDirectory(atPath: root + "/docs").filter { $0.hasSuffix(".md") }
        var all: [String] = []
        for file in ["README.md"] + docs.map({ "docs/" + $0 }) {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            let (found, unparsed) = Self.findings(text)
            #expect(unparsed.isEmpty, "\(file): not JSON: \(unparsed)")
            all += found.map { JSONWriter.string($0) }
        }
        #expect(all.count >= 3, "expected finding examples in the docs")
        let result = try Command.run(
            ["python3", TestEnvironment.scriptPath("validate-findings")], stdin: all.joined(separator: "\n") + "\n")
        #expect(result.status == 0, "\(result.stderr)")
    }
}
