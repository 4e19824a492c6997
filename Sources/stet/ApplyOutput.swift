import StetCore
import StetEngine

/// What `stet apply` prints when it is done: each change's and each wait's result as JSON, or
/// in text the skipped changes, a count, and every replica that was not healthy in time.
enum ApplyOutput {
    private struct Line: Encodable {
        var change: String
        var ok: Bool
        var detail: String
        var error: String?
        var seconds: Double

        init(_ result: Applier.Result) {
            change = result.change.id
            ok = result.outcome.ok
            detail = result.outcome.detail
            error = result.outcome.error
            seconds = result.seconds
        }
    }

    static func report(_ result: Applier.Report, plan: Plan, json: Bool) {
        let out = Terminal.standardOutput
        if json {
            out.json([
                "plan": AnyEncodable(plan.id),
                "results": AnyEncodable(result.results.map(Line.init)),
                "skipped": AnyEncodable(result.skipped.map(\.id)),
                "waited": AnyEncodable(result.waited.map(Line.init)),
            ])
            return
        }
        for skipped in result.skipped { out.line("\(out.yellow("skipped"))  \(skipped.id)  (an earlier change of \(skipped.resource) failed)") }
        let failed = result.results.filter { !$0.outcome.ok }.count
        out.line("Applied \(result.results.count - failed) of \(plan.changes.count) changes" + (failed > 0 ? ", \(failed) failed." : "."))
        guard !result.waited.isEmpty else { return }
        let unready = result.waited.filter { !$0.outcome.ok }
        if unready.isEmpty {
            out.line("\(result.waited.count) new replica(s) healthy.")
        } else {
            out.line(out.red("\(unready.count) of \(result.waited.count) new replica(s) not healthy:"))
            for wait in unready { out.line("  \(wait.outcome.error ?? wait.change.subject)") }
        }
    }
}
