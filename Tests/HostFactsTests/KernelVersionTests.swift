import HostFacts
import Testing

@Suite("Kernel version codes, computed as libbpf does")
struct KernelVersionTests {
    @Test("KERNEL_VERSION clamps the patch level at 255")
    func clamping() {
        #expect(KernelVersion(major: 4, minor: 19, patch: 260).code == 4 * 65536 + 19 * 256 + 255)
        #expect(KernelVersion(major: 4, minor: 14, patch: 96).code == 4 * 65536 + 14 * 256 + 96)
        #expect(KernelVersion(major: 6, minor: 18, patch: 44).code == 397_868)
    }

    @Test(
        "real version strings",
        arguments: [
            // (release, uname -v, /proc/version_signature, expected triple, expected code)
            ("6.18.44-fc-v782", "#1 SMP PREEMPT_DYNAMIC @0", nil, "6.18.44", 397_868),
            ("4.19.0-22-amd64", "#1 SMP Debian 4.19.260-1 (2022-09-29)", nil, "4.19.260", 267_263),
            ("6.1.0-26-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)", nil, "6.1.112", 393_584),
            (
                "5.4.0-12-generic", "#15-Ubuntu SMP Tue Jan 21 15:12:29 UTC 2020", "Ubuntu 5.4.0-12.15-generic 5.4.8",
                "5.4.8", 328_712
            ),
            (
                "6.8.0-45-generic", "#45~22.04.1-Ubuntu SMP PREEMPT_DYNAMIC Wed Sep 11 15:25:05 UTC 2",
                "Ubuntu 6.8.0-45.45~22.04.1-generic 6.8.12", "6.8.12", 395_276
            ),
            (
                "5.15.0-1073-azure", "#82-Ubuntu SMP Mon Aug 26 18:37:42 UTC 2024",
                "Ubuntu 5.15.0-1073.82-azure 5.15.164", "5.15.164", 331_684
            ),
            ("5.10.226-214.880.amzn2.x86_64", "#1 SMP Tue Oct 8 16:18:15 UTC 2024", nil, "5.10.226", 330_466),
            (
                "6.1.112-122.189.amzn2023.x86_64", "#1 SMP PREEMPT_DYNAMIC Tue Oct  8 17:04:04 UTC 2024", nil,
                "6.1.112",
                393_584
            ),
            ("4.18.0-553.16.1.el8_10.x86_64", "#1 SMP Thu Aug 1 04:16:12 EDT 2024", nil, "4.18.0", 266_752),
            (
                "5.14.0-427.13.1.el9_4.x86_64", "#1 SMP PREEMPT_DYNAMIC Wed Apr 10 10:29:16 EDT 2024", nil, "5.14.0",
                331_264
            ),
            ("6.1.100+", "#1 SMP PREEMPT_DYNAMIC Sat Aug 24 16:19:44 UTC 2024", nil, "6.1.100", 393_572),
            ("6.1.102", "#1 SMP PREEMPT_DYNAMIC Wed Aug 21 20:31:27 UTC 2024", nil, "6.1.102", 393_574),
            ("6.6.54-flatcar", "#1 SMP PREEMPT_DYNAMIC Mon Oct  7 20:33:23 -00 2024", nil, "6.6.54", 394_806),
            ("6.8-rc1", "#1 SMP", nil, "6.8.0", 395_264),
        ] as [(String, String, String?, String, Int)]
    )
    func realStrings(release: String, version: String, signature: String?, triple: String, code: Int) throws {
        let detected = try #require(
            KernelVersion.detect(release: release, version: version, versionSignature: signature))
        #expect(detected.description == triple)
        #expect(detected.code == code)
    }

    @Test("the signature wins over the release, Debian's uname -v over the release")
    func sources() throws {
        let ubuntu = try #require(
            KernelVersion.detect(
                release: "5.4.0-12-generic", version: "#1 SMP Debian 9.9.9-1",
                versionSignature: "Ubuntu 5.4.0-12.15-generic 5.4.8"))
        #expect(ubuntu.source == .versionSignature)
        let debian = try #require(
            KernelVersion.detect(release: "4.19.0-22-amd64", version: "#1 SMP Debian 4.19.260-1", versionSignature: nil)
        )
        #expect(debian.source == .debianVersion)
        // A signature that does not parse falls back, as libbpf does.
        let fallback = try #require(
            KernelVersion.detect(release: "5.4.0-12-generic", version: "#1 SMP", versionSignature: "Ubuntu"))
        #expect(fallback.source == .release)
        #expect(fallback.description == "5.4.0")
    }

    @Test(
        "malformed input gives nil, never a crash",
        arguments: [
            "", "garbage", "5", "5.", ".5.4", "99999999999999999999.1.1", "\u{0}\u{1}", "-1.2.3", "five.four.three",
        ]
    )
    func malformedRelease(_ text: String) {
        #expect(KernelVersion.fromRelease(text) == nil)
    }

    @Test("malformed signatures and Debian versions give nil")
    func malformedOthers() {
        #expect(KernelVersion.fromVersionSignature("") == nil)
        #expect(KernelVersion.fromVersionSignature("Ubuntu 5.4.0-12.15-generic") == nil)
        #expect(KernelVersion.fromVersionSignature("Ubuntu 5.4.0-12.15-generic 5.4") == nil)
        #expect(KernelVersion.fromDebianVersion("SMP Debian 4.19.260-1") == nil)
        #expect(KernelVersion.fromDebianVersion("#1 SMP Debian") == nil)
        #expect(KernelVersion.fromDebianVersion("#1 SMP Debian x.y.z") == nil)
    }
}
