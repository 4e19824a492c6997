import ArgumentParser
import Foundation
import StetCore
import StetManifest

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check manifests against the schema, without signatures (for pull-request lint).",
        discussion: """
            Reports every problem of every file at once, each as FILE:LINE:COLUMN: FIELD: MESSAGE.

            EXIT STATUS
              0   every manifest is valid
              1   at least one problem
            """
    )

    @Argument(help: "Manifest directory.")
    var directory = "manifests"

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    struct Report: Encodable {
        var valid: Bool
        var resources: [String]
        var errors: [Diagnostic]
    }

    func run() throws {
        do {
            let state = try ManifestLoader.load(directory: directory)
            let ids = state.resourceIDs
            if json {
                Terminal.standardOutput.json(Report(valid: true, resources: ids.map(\.description), errors: []))
            } else {
                let out = Terminal.standardOutput
                out.line("\(out.green("valid")): \(directory): \(Summary.counts(ids))")
            }
        } catch let error as ManifestError {
            guard json else { throw error }
            Terminal.standardOutput.json(Report(valid: false, resources: [], errors: error.diagnostics))
            throw CommandFailure(status: ExitStatus.error, message: nil)
        }
    }
}

enum Summary {
    /// `2 Service, 1 BackupPolicy, 1 Monitor, 1 Notifier`.
    static func counts(_ ids: [ResourceID]) -> String {
        let parts = ResourceKind.allCases.compactMap { kind -> String? in
            let n = ids.filter { $0.kind == kind }.count
            return n == 0 ? nil : "\(n) \(kind.rawValue)"
        }
        return parts.isEmpty ? "no resources" : parts.joined(separator: ", ")
    }
}
