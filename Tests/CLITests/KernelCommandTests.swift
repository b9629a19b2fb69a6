import PGNodeModel
import TestSupport
import Testing

@Suite("pgnode kernel on this machine")
struct KernelCommandTests {
    @Test("prints one JSON object with the running kernel's version code")
    func kernelOnThisMachine() throws {
        let result = try Command.pgnode(["kernel"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let json = try JSONParser.parse(result.stdout)
        let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
        #expect(json["release"]?.stringValue == release.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(json["version_code"]?.intValue != nil)
    }
}
