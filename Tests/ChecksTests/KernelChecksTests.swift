import Checks
import HostFacts
import PGNodeModel
import TestSupport
import Testing

@Suite("kernel.btf and kernel.headers")
struct KernelChecksTests {
    func facts(_ host: String) -> KernelFacts { KernelFacts.gather(host: HostRoot(Fixtures.host(host))) }

    @Test("no BTF is critical, and the remedy names the BTFHub path for this node")
    func missingBTF() {
        let o = KernelChecks.btf(facts("debian10"))
        #expect(o.severity == .critical)
        #expect(o.remedy.contains("debian/10/"))
        #expect(o.remedy.contains("4.19.0-22-amd64.btf"))
        #expect(o.remedy.contains("CONFIG_DEBUG_INFO_BTF"))
    }

    @Test("BTF present is ok with its size")
    func presentBTF() {
        let o = KernelChecks.btf(facts("bottlerocket"))
        #expect(o.severity == .ok)
        #expect(o.evidence["size_bytes"] == .int(64))
        #expect(o.remedy.isEmpty)
    }

    @Test("a --btf file makes it ok even without kernel BTF")
    func overrideBTF() {
        let o = KernelChecks.btf(facts("debian10"), override: "/tmp/x.btf")
        #expect(o.severity == .ok)
        #expect(o.evidence["source"] == "option")
    }

    @Test("headers: info when missing, ok when found")
    func headers() {
        let missing = KernelChecks.headers(facts("bottlerocket"))
        #expect(missing.severity == .info)
        #expect(missing.evidence["found"] == .array([]))
        let found = KernelChecks.headers(facts("rhel8"))
        #expect(found.severity == .ok)
        #expect(found.summary.contains("/usr/src/kernels/4.18.0-553.16.1.el8_10.x86_64"))
    }

    @Test("an empty host still gives both findings")
    func emptyHost() {
        let all = KernelChecks.all(facts("empty"))
        #expect(all.map(\.check) == ["kernel.btf", "kernel.headers"])
    }
}
