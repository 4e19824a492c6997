import Foundation
import StetCrypto
import Testing

@Suite struct HMACTests {
    /// RFC 4231 test cases 1, 2 and 6 (a key longer than a block is hashed first), and a key of
    /// exactly one block (checked with Python's hmac).
    @Test(arguments: [
        (Data(repeating: 0x0b, count: 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Data("Jefe".utf8), "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (Data(repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (Data(repeating: 0xaa, count: 64), "exactly a block", "63c3ca86a738726129bab6fe13f888d0b9744a85b31428d2efd15612d8413bfd"),
    ])
    func knownAnswers(key: Data, message: String, hex: String) {
        #expect(HMAC.sha256(key: key, Data(message.utf8)).hexString == hex)
    }

    @Test func randomKeysAreFreshAndOfTheirLength() {
        let keys = (0..<8).map { _ in HMAC.randomKey() }
        #expect(keys.allSatisfy { $0.count == 32 })
        #expect(Set(keys).count == keys.count)
    }
}
