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

@Suite("/proc/<pid>/maps")
struct ProcessMapsTests {
    @Test("file mappings with devices, inodes, spaces and deleted marks; anonymous ones skipped")
    func parse() {
        let text = """
            55d4c6a00000-55d4c6a2a000 r--p 00000000 fd:01 1315178                    /usr/lib/postgresql/15/bin/postgres
            7f8bbba15000-7f8bbba3b000 r--p 00000000 00:27 6725638                    /usr/lib/x86_64-linux-gnu/libc.so.6
            7f8bbba3b000-7f8bbbb91000 r-xp 00026000 00:27 6725638                    /usr/lib/x86_64-linux-gnu/libc.so.6
            7f8bbbc00000-7f8bbbc01000 rw-s 00000000 00:05 3                          /SYSV00000000 (deleted)
            7f8bbbd00000-7f8bbbd10000 r-xp 00000000 103:02 42                         /opt/my lib/ld-musl-x86_64.so.1
            7f8bbbe00000-7f8bbbe21000 rw-p 00000000 00:00 0                          [heap]
            7f8bbbf00000-7f8bbbf21000 rw-p 00000000 00:00 0
            garbage
            """
        let maps = ProcessMaps.parse(text)
        #expect(
            maps.map(\.path) == [
                "/usr/lib/postgresql/15/bin/postgres", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libc.so.6", "/SYSV00000000", "/opt/my lib/ld-musl-x86_64.so.1",
            ])
        #expect(maps[0].deviceMajor == 0xfd && maps[0].deviceMinor == 1 && maps[0].inode == 1_315_178)
        #expect(maps[1].start == 0x7f8b_bba1_5000 && !maps[1].executable && maps[2].executable)
        #expect(maps[3].deleted && !maps[1].deleted)
        #expect(maps[4].deviceMajor == 0x103 && maps[4].deviceMinor == 2 && maps[4].baseName == "ld-musl-x86_64.so.1")
    }
}
