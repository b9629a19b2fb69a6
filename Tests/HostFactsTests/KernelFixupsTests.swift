import Foundation
import HostFacts
import Testing

@Suite("kernel fixups for header-based tools")
struct KernelFixupsTests {
    @Test("BCC environment lines are eval-ready")
    func bccEnvironment() {
        #expect(
            KernelFixups.bccEnvironment(versionCode: 265_824, headersPath: "/host/usr/src/linux-headers-4.14.96")
                == "BCC_LINUX_VERSION_CODE=265824\nBCC_KERNEL_SOURCE=/host/usr/src/linux-headers-4.14.96\n")
        #expect(KernelFixups.bccEnvironment(versionCode: 1, headersPath: nil) == "BCC_LINUX_VERSION_CODE=1\n")
        #expect(KernelFixups.shellQuoted("/a b/it's") == "'/a b/it'\\''s'")
    }

    @Test("uprobes on overlayfs from 4.18")
    func uprobes() {
        var facts = KernelFacts.gather(host: HostRoot("/"))
        facts.kernelVersion = KernelVersion(major: 4, minor: 17, patch: 19)
        #expect(facts.uprobesOnOverlayfs == false)
        facts.kernelVersion = KernelVersion(major: 4, minor: 18, patch: 0)
        #expect(facts.uprobesOnOverlayfs == true)
        facts.kernelVersion = nil
        #expect(facts.uprobesOnOverlayfs == nil)
    }

    @Test("link-headers creates, keeps, replaces its own link and refuses others")
    func linkHeaders() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgnode-modules-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try KernelFixups.linkHeaders(release: "5.10.0-x", target: "/host/usr/src/a", modulesDir: dir)
        #expect(first == .created(link: "\(dir)/5.10.0-x/build", target: "/host/usr/src/a"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/5.10.0-x/build") == "/host/usr/src/a")
        let again = try KernelFixups.linkHeaders(release: "5.10.0-x", target: "/host/usr/src/a", modulesDir: dir)
        #expect(again == .alreadyLinked(link: "\(dir)/5.10.0-x/build", target: "/host/usr/src/a"))
        // Its own link (marker present) may be re-pointed.
        let moved = try KernelFixups.linkHeaders(release: "5.10.0-x", target: "/host/usr/src/b", modulesDir: dir)
        #expect(moved == .created(link: "\(dir)/5.10.0-x/build", target: "/host/usr/src/b"))
        // A link someone else made, or a real directory, is refused.
        try FileManager.default.createDirectory(atPath: "\(dir)/6.1.0-y", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: "\(dir)/6.1.0-y/build", withDestinationPath: "/usr/src/theirs")
        #expect(
            throws: KernelFixups.LinkError.occupied(path: "\(dir)/6.1.0-y/build", what: "a link to /usr/src/theirs")
        ) {
            try KernelFixups.linkHeaders(release: "6.1.0-y", target: "/host/usr/src/c", modulesDir: dir)
        }
        try FileManager.default.createDirectory(atPath: "\(dir)/6.2.0-z/build", withIntermediateDirectories: true)
        #expect(throws: KernelFixups.LinkError.occupied(path: "\(dir)/6.2.0-z/build", what: "a directory")) {
            try KernelFixups.linkHeaders(release: "6.2.0-z", target: "/host/usr/src/c", modulesDir: dir)
        }
    }
}
