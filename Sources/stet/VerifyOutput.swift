import Foundation
import StetCore
import StetManifest

/// What `stet verify` prints about a release and the trust policy it was checked under.
enum VerifyOutput {
    struct TrustReport: Encodable {
        var version: Int
        var digest: String
        var source: String
    }

    static func trustReport(_ decision: TrustDecision) -> TrustReport {
        let source = switch decision.source {
        case .pinned: "pinned"
        case .rotated(let from): "rotated from version \(from)"
        case .firstUse: "pinned now (trust on first use)"
        case .unpinned: "repository (not pinned)"
        }
        return TrustReport(version: decision.policy.version, digest: decision.policy.digest, source: source)
    }

    static func trustWarnings(_ decision: TrustDecision, trustFile: String, store: String, accepting accept: Bool) {
        switch decision.source {
        case .unpinned:
            Terminal.standardOutput.warning(
                "no trust policy is pinned in \(store); checked against \(trustFile), which anyone who can "
                    + "push to the repository can change. Pin it with `stet trust pin \(trustFile)`")
        case .firstUse:
            Terminal.standardOutput.warning(
                "pinned \(trustFile) on first use: whoever could write it now is trusted; compare the key ids "
                    + "(`stet trust pin` prints them) with their owners")
        case .rotated(let from):
            Terminal.standardOutput.warning(
                "the trust policy rotates from version \(from) to \(decision.policy.version) (signed by the root keys)"
                    + (accept ? "; pinned" : "; pinned when a release is accepted"))
        case .pinned:
            break
        }
    }

    static func printReport(_ report: ReleaseReport, trust: TrustDecision) {
        let out = Terminal.standardOutput
        out.line("release    \(report.directory)" + (report.version.map { " version \($0)" } ?? ""))
        if let digest = report.digest { out.line("digest     \(digest)") }
        if let created = report.created, let expires = report.expires {
            out.line("validity   created \(RFC3339.format(created)), expires \(RFC3339.format(expires))")
        }
        if let files = report.files { out.line("files      \(files)") }
        for (index, signer) in report.signers.enumerated() {
            let who = signer.name ?? "keyid \(signer.keyid.prefix(16))…"
            let status = switch signer.status {
            case .counted: out.green("counts") + " (release role)"
            case .notInRole: out.yellow("not counted") + ": not in the release role"
            case .invalid: out.red("not counted") + ": does not verify under any trusted key"
            case .duplicate: out.yellow("not counted") + ": this key signed already"
            }
            out.line("\(index == 0 ? "signers   " : "          ") \(who)\(signer.example ? " (example key)" : ""): \(status)")
        }
        if report.signers.isEmpty { out.line("signers    none") }
        let counted = report.signers.filter { $0.status == .counted }.count
        var threshold = "threshold  \(counted) of \(report.threshold) " + (report.thresholdMet ? out.green("met") : out.red("not met"))
        if !report.thresholdMet {
            // Who could still sign: release keys that have not counted yet.
            let signed = Set(report.signers.filter { $0.status == .counted }.compactMap(\.name))
            let missing = trust.policy.keys(in: .release).map(\.name).filter { !signed.contains($0) }
            let needed = report.threshold - counted
            if !missing.isEmpty {
                threshold += ": needs \(needed == 1 ? "one" : "\(needed)") of \(missing.joined(separator: ", "))"
            }
        }
        out.line(threshold)
        out.line("trust      policy version \(trust.policy.version), \(trustReport(trust).source)")
    }
}
