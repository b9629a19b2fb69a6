import HostFacts
import Testing

@Suite("mountinfo")
struct MountInfoTests {
    @Test("a real line with optional fields and an escaped space")
    func realLine() throws {
        let line = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue"
        let entry = try #require(MountInfo.parseLine(Substring(line)))
        #expect(entry.id == 36)
        #expect(entry.parentID == 35)
        #expect(entry.device == "98:0")
        #expect(entry.root == "/mnt1")
        #expect(entry.mountPoint == "/mnt two")
        #expect(entry.fileSystemType == "ext3")
        #expect(entry.source == "/dev/root")
        #expect(entry.superOptions == ["rw", "errors=continue"])
    }

    @Test("malformed lines are counted and skipped")
    func malformed() {
        let text = """
            garbage
            1 2 3
            36 35 98:0 /mnt1 /mnt2 rw - ext3
            x 35 98:0 / /a rw - ext3 /dev/a rw
            37 35 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
            38 35 0:31 / /trailing\\04 rw - tmpfs tmpfs rw
            """
        let (entries, bad) = MountInfo.parse(text)
        #expect(entries.count == 2)
        #expect(bad == 4)
        #expect(entries[1].mountPoint == "/trailing\\04")
    }

    @Test("empty input")
    func empty() {
        let (entries, bad) = MountInfo.parse("")
        #expect(entries.isEmpty && bad == 0)
    }
}

@Suite("os-release")
struct OSReleaseTests {
    @Test("quoted, unquoted and escaped values; comments")
    func values() {
        let os = OSRelease.parse(
            """
            # comment
            NAME="Amazon Linux"
            ID="amzn"
            VERSION_ID='2'
            PRETTY_NAME="Say \\"hi\\""
            """)
        #expect(os.id == "amzn")
        #expect(os.versionID == "2")
        #expect(os.prettyName == "Say \"hi\"")
    }

    @Test("garbage gives empty fields")
    func garbage() {
        let os = OSRelease.parse("=\n==\nID\n\u{0}")
        #expect(os.id == nil && os.versionID == nil)
    }
}
