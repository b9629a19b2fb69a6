import Shipping
import Testing

@Suite("--endpoint-header parsing")
struct EndpointHeaderTests {
    @Test("'Name: value' with the value trimmed; tokens and UTF-8 values accepted")
    func accepted() throws {
        #expect(try EndpointHeader.parse("X-Scope-OrgID: team-a") == EndpointHeader.parse("X-Scope-OrgID:team-a"))
        let header = try EndpointHeader.parse("X-Scope-OrgID:  team-a|team-b \t")
        #expect(header.name == "X-Scope-OrgID")
        #expect(header.value == "team-a|team-b")
        #expect(try EndpointHeader.parse("x!#$%&'*+-.^_`|~: ok").name == "x!#$%&'*+-.^_`|~")
        #expect(try EndpointHeader.parse("X-Note: café").value == "café")
        #expect(try EndpointHeader.parse("X-Empty:").value == "")
        // Authorization is the user's to give, unless a token file sets it.
        #expect(try EndpointHeader.parse("Authorization: ApiKey abc").value == "ApiKey abc")
    }

    @Test("refused: no colon, a bad name, control characters (header injection), pgnode's own headers, too long")
    func refused() {
        func error(_ text: String, withTokenFile: Bool = false) -> EndpointHeader.ParseError? {
            do {
                _ = try EndpointHeader.parse(text, withTokenFile: withTokenFile)
                return nil
            } catch {
                return error
            }
        }
        #expect(error("X-Scope-OrgID team-a") == .noColon)
        #expect(error(": value") == .badName(""))
        #expect(error("X Scope: a") == .badName("X Scope"))
        #expect(error("X-(a): a") == .badName("X-(a)"))
        #expect(error("X-A: a\r\nX-Injected: b") == .badValue("X-A"))
        #expect(error("X-A: a\nb") == .badValue("X-A"))
        #expect(error("X-A: a\u{0}b") == .badValue("X-A"))
        #expect(error("X-A: a\u{7F}") == .badValue("X-A"))
        #expect(error("content-type: text/plain") == .reserved("content-type"))
        #expect(error("Content-Encoding: identity") == .reserved("Content-Encoding"))
        #expect(error("Host: elsewhere") == .reserved("Host"))
        #expect(error("Authorization: Basic x", withTokenFile: true) == .reserved("Authorization"))
        #expect(error("X-A: " + String(repeating: "v", count: EndpointHeader.maximumLength)) == .tooLong)
        #expect(error("X-A: a\r\nX-Injected: b")?.description.contains("control character") == true)
    }
}
