import ArgumentParser
import Foundation
import StetAudit
import StetCrypto
import StetManifest
import StetState

struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Pin the trust policy on this host, and sign its rotations.",
        subcommands: [TrustPinCommand.self, TrustSignCommand.self]
    )
}

struct TrustPinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Pin a trust policy in the state directory: from now on only it, or a rotation it signs, counts.",
        discussion: """
            Prints every key and its id: confirm them with their owners out of band (a call, a \
            signed chat) before relying on the policy. Refuses to replace a different pinned policy \
            unless --replace: the normal way to change it is a rotation (`stet trust sign`). Pinning \
            acts on this host, so it needs a key of the new policy's operator role (--key or \
            STET_KEY) and is recorded in the audit log.

            EXIT STATUS
              0   pinned (or already pinned)
              1   the policy is invalid, or a different one is pinned (without --replace)
            """
    )

    @Argument(help: "Trust policy file (keys/trust.yaml).")
    var file = "keys/trust.yaml"

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Replace a different pinned policy (an administrator's decision on this host).")
    var replace = false

    @OptionGroup var key: KeyOption

    struct KeyLine: Encodable {
        var name: String
        var keyid: String
        var roles: [String]
        var example: Bool
    }

    func run() throws {
        let policy = try TrustPolicy.load(file: file)
        let store = global.store
        let current = try PinnedTrust.load(from: store)
        let keys = policy.keys.values.sorted { $0.name < $1.name }.map { key in
            KeyLine(
                name: key.name, keyid: key.publicKey.keyID,
                roles: TrustPolicy.Role.allCases.filter { policy.roles[$0]?.keys.contains(key.name) == true }.map(\.rawValue),
                example: key.example)
        }
        let unchanged = current.map { $0.sameAuthority(as: policy) } ?? false
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        if let current, !unchanged, !replace {
            let message = "a different trust policy (version \(current.version)) is pinned in \(store.root); "
                + "change it with a signed rotation, or pass --replace"
            OperatorSession.recordEarlyRefusal(
                global: global, key: privateKey, action: "pin-trust",
                reason: "pinning trust policy version \(policy.version) from \(file) was refused", error: message)
            throw CommandFailure(status: ExitStatus.error, message: message)
        }
        if !unchanged {
            // The key must be an operator of the policy it pins; the pin is recorded before it is made.
            let session = try OperatorSession(global: global, key: privateKey, policy: policy)
            try session.log.append(AuditRecord(
                kind: .result, release: AuditContext.acceptedRelease(store), action: "pin-trust",
                reason: "pinned trust policy version \(policy.version) (\(policy.digest)) from \(file)"
                    + (current.map { ", replacing version \($0.version)" } ?? ""),
                outcome: .ok))
            try PinnedTrust.save(policy, to: store, now: Date())
            try session.close()
        }
        let out = Terminal.standardOutput
        if global.json {
            struct Report: Encodable {
                var version: Int
                var digest: String
                var keys: [KeyLine]
                var changed: Bool
            }
            out.json(Report(version: policy.version, digest: policy.digest, keys: keys, changed: !unchanged))
            return
        }
        out.line((unchanged ? "already pinned" : out.green("pinned")) + ": trust policy version \(policy.version) from \(file) in \(store.root)/trust")
        for key in keys {
            out.line("  \(key.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(key.keyid)  \(key.roles.joined(separator: ","))"
                + (key.example ? "  " + out.yellow("(example key: not for real use)") : ""))
        }
        out.line("Confirm each key id with its owner before relying on this policy.")
    }
}

struct TrustSignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign the repository's new trust policy as a root key (writes trust.dsse.json beside it).",
        discussion: """
            A changed keys/trust.yaml is taken by a host only with a trust.dsse.json signed by the \
            threshold of the pinned policy's root role and of the new policy's root role, for exactly \
            the next version. Raise `version:` in trust.yaml by one, then have the root keys of both \
            policies run this command.

            EXIT STATUS
              0   signed
              1   invalid policy, or a key that is not a root key (without --force)
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Flag(help: "Sign with a key that is a root key of neither policy known here.")
    var force = false

    func run() throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        var signer = TrustSigner(trustFile: global.trust, key: privateKey, pinned: try PinnedTrust.load(from: global.store))
        signer.force = force
        let result = try signer.sign()
        if global.json {
            Terminal.standardOutput.json(result)
            return
        }
        let out = Terminal.standardOutput
        out.line("\(out.green("signed")) trust policy version \(result.version) (\(result.policy)) as \(result.signer ?? privateKey.publicKey.keyID)")
        out.line("  signatures  \(result.signatures)")
        out.line("  keys, as signed (confirm each id with its owner):")
        for (name, keyid) in result.keys.sorted(by: { $0.key < $1.key }) {
            out.line("    \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(keyid)")
        }
    }
}
