import Resolution
import Testing

@Suite("NamespaceFilter: parsing --namespace")
struct NamespaceFilterTests {
    @Test(
        "Kubernetes namespace names are accepted",
        arguments: ["prod", "kube-system", "a", "0", "team-42", String(repeating: "a", count: 63)])
    func accepted(name: String) throws {
        #expect(try NamespaceFilter.parse([name]).namespaces == [name])
    }

    @Test(
        "anything else is refused, naming the value",
        arguments: [
            "", "Prod", "-prod", "prod-", "prod/web-0", "pro_d", "pro.d", "prod ", "pröd", "prod\n",
            String(repeating: "a", count: 64),
        ])
    func refused(name: String) {
        #expect(throws: NamespaceFilterError(value: name)) { try NamespaceFilter.parse(["prod", name]) }
        #expect(NamespaceFilterError(value: name).description.hasPrefix("--namespace '\(name)'"))
    }

    @Test("no values: every container admitted; repeated values count once")
    func emptyAndRepeated() throws {
        #expect(try NamespaceFilter.parse([]).admitsEverything)
        #expect(try NamespaceFilter.parse(["prod", "prod", "shop"]).namespaces == ["prod", "shop"])
    }
}
