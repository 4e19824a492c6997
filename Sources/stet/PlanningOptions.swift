import ArgumentParser
import Foundation
import StetEngine
import StetManifest
import StetState

/// Options of the commands that plan: where the manifests are, and pruning.
struct PlanningOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Manifest directory.", valueName: "dir"))
    var manifests = "manifests"

    @Flag(help: "Plan the removal of resources the release no longer declares (never of protected ones).")
    var prune = false

    @Option(help: ArgumentHelp("Take the release from git: git:URL_OR_PATH (fetched into the state directory).", valueName: "git:url"))
    var source: String?

    @Option(help: ArgumentHelp("With --source: the branch, tag or commit to use (default: --branch).", valueName: "ref"))
    var ref: String?

    @Option(help: ArgumentHelp("With --source: the branch to follow.", valueName: "branch"))
    var branch = "main"

    @Option(help: ArgumentHelp("With --source: the manifest directory inside the repository.", valueName: "path"))
    var path = "manifests"

    func validate() throws {
        if let source, !source.hasPrefix("git:") { throw ValidationError("--source \(source): expected git:URL_OR_PATH") }
    }

    /// The git source, when --source names one; a URL, ref or branch that Stet does not hand to
    /// git, or a path that leaves the repository, is an error (exit 1) before anything runs.
    func gitSource(_ store: FileStateStore) throws -> GitSource? {
        guard let source else { return nil }
        do {
            return try GitSource(source, ref: ref, branch: branch, path: path, store: store)
        } catch {
            throw CommandFailure(status: ExitStatus.error, message: error.description)
        }
    }

    /// The release gate for the manifests (fetched and unpacked first with --source), and the
    /// commit they came from.
    func gate(_ global: GlobalOptions) throws -> (ReleaseGate, commit: String?) {
        try gate(global, source: try gitSource(global.store))
    }

    func gate(_ global: GlobalOptions, source: GitSource?) throws -> (ReleaseGate, commit: String?) {
        guard let source else {
            return (ReleaseGate(manifests: manifests, trustFile: global.trust, store: global.store), nil)
        }
        do {
            let commit = try source.fetch()
            try source.checkout(commit)
            return (source.gate(commit: commit), commit)
        } catch let failure as GitSource.Failure {
            throw CommandFailure(status: ExitStatus.error, message: "git source: \(failure)")
        }
    }
}
