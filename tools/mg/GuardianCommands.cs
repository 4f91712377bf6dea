using System.CommandLine;
using System.Globalization;
using System.Text;
using ModelGuardian.Engine.Guardian;
using ModelGuardian.Engine.Imaging;
using ModelGuardian.Tools.Serve;

namespace ModelGuardian.Tools;

/// <summary>`mg serve`, `mg screen`, `mg users`, `mg admin-key`, `mg audit verify`.</summary>
internal static class GuardianCommands
{
    private static Option<string> ConfigOption() => new("--config") { Description = "guardian.json", Required = true };

    public static IEnumerable<Command> All() => [Serve(), Screen(), Users(), AdminKey(), Audit()];

    private static Command Serve()
    {
        var config = ConfigOption();
        var urls = new Option<string?>("--urls") { Description = "listen address(es), overriding the config's \"listen\" (e.g. http://127.0.0.1:8080)" };
        var cmd = new Command("serve", "Serves the protected model over HTTP: screening, ledger, DPreds, termination.") { config, urls };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var c = ServeConfig.Load(parse.GetValue(config)!);
            using var host = GuardianHost.Start(c);
            foreach (var w in host.Warnings) Console.Error.WriteLine($"mg serve: warning: {w}");
            if (c.AdminKeyHash == null) Console.Error.WriteLine("mg serve: warning: no admin_key_sha256: the admin API refuses every request");
            var app = GuardianServer.Build(host, parse.GetValue(urls) is { } u ? u.Split(';') : null);
            app.Lifetime.ApplicationStarted.Register(() =>
                Console.Error.WriteLine($"mg serve: listening on {string.Join(", ", app.Urls)} (τ = {c.Policy.Tau}, δ = {c.Policy.Delta}, v = {c.Policy.V}, ledger {c.Ledger.Kind})"));
            app.Run();
        }));
        return cmd;
    }

    private static Command Screen()
    {
        var input = new Argument<string>("input") { Description = "an image, or a folder of images (PNG/JPEG/BMP)" };
        var config = ConfigOption();
        var user = new Option<string?>("--user") { Description = "screen as this user: queries are counted in the ledger and the policy applies" };
        var output = new Option<string?>("--output", "-o") { Description = "CSV file for folder mode (default: screen.csv in the current folder)" };
        var cmd = new Command("screen", "Prints each image's verdict, detector scores and answer, using the same Guardian as mg serve.") { input, config, user, output };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var c = ServeConfig.Load(parse.GetValue(config)!);
            using var host = GuardianHost.Start(c);
            foreach (var w in host.Warnings) Console.Error.WriteLine($"mg screen: warning: {w}");
            string path = parse.GetValue(input)!;
            bool folder = Directory.Exists(path);
            var files = folder
                ? Directory.EnumerateFiles(path).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg" or ".bmp").Order(StringComparer.Ordinal).ToList()
                : File.Exists(path) ? [path] : throw new FileNotFoundException($"'{path}' is neither an image nor a folder.");
            if (files.Count == 0) throw new ArgumentException($"'{path}' holds no PNG/JPEG/BMP images.");
            string? u = parse.GetValue(user);
            var csv = new StringBuilder("file,flagged," + string.Join(",", host.Models.Detector.Detectors.Select(d => $"score_{d.Name}")) + ",label,probability,status\n");
            foreach (var file in files)
            {
                var image = PlanarImage.From(RgbImage.Load(file, c.Limits.MaxImageSide));
                Evaluation e;
                GuardianAnswer answer;
                if (u != null)
                {
                    var outcome = host.Guardian.QueryAsync(u, image).GetAwaiter().GetResult();
                    answer = outcome.Answer;
                    e = outcome.Evaluation ?? host.Models.Evaluate([image])[0];
                }
                else
                {
                    e = host.Models.Evaluate([image])[0];
                    answer = new GuardianAnswer(QueryStatus.Answered, e.Probabilities, DeceptivePredictions.ArgMax(e.Probabilities));
                }
                string scores = string.Join(",", e.Verdict.Scores.Select(s => s.ToString("F6", CultureInfo.InvariantCulture)));
                string status = answer.Status == QueryStatus.Refused ? "refused" : e.Verdict.Flagged ? "dpreds" : "answered";
                double top = answer.Status == QueryStatus.Refused ? double.NaN : answer.Probabilities[answer.Label];
                csv.Append(CultureInfo.InvariantCulture, $"{Csv(file)},{(e.Verdict.Flagged ? 1 : 0)},{scores},{answer.Label},{top:F6},{status}\n");
                if (!folder)
                    Console.Out.WriteLine($"{file}: {(e.Verdict.Flagged ? "FLAGGED (synthetic query)" : "benign")}, detector scores [{scores}], " +
                                          (answer.Status == QueryStatus.Refused ? "user terminated: refused" : $"label {answer.Label} (p = {top:F4}){(e.Verdict.Flagged ? ", answered with DPreds" : "")}"));
            }
            if (folder)
            {
                string csvPath = parse.GetValue(output) ?? "screen.csv";
                File.WriteAllText(csvPath, csv.ToString());
                Console.Error.WriteLine($"mg screen: {files.Count} image(s) → {csvPath}");
            }
            if (u != null && host.Ledger.GetAsync(u).GetAwaiter().GetResult() is { } entry)
                Console.Error.WriteLine($"mg screen: ledger of '{u}': {entry.Flagged} of {entry.Total} flagged{(entry.IsTerminated ? $", TERMINATED ({entry.TerminationReason})" : "")}");
        }));
        return cmd;
    }

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static Command Users()
    {
        var cmd = new Command("users", "Manages API users and their keys (stored hashed in the ledger's store).");
        var config = ConfigOption();
        var name = new Argument<string>("name") { Description = "user name" };
        var add = new Command("add", "Adds a user and prints their API key once (only its SHA-256 is stored).") { name, config };
        add.SetAction(parse => Program.Run(() =>
        {
            using var store = GuardianHost.OpenLedger(ServeConfig.Load(parse.GetValue(config)!));
            string key = ApiKeys.Generate();
            store.AddAsync(parse.GetValue(name)!, ApiKeys.Hash(key), DateTimeOffset.UtcNow).GetAwaiter().GetResult();
            Console.Out.WriteLine(key);
            Console.Error.WriteLine($"mg users: added '{parse.GetValue(name)}'; the key above is shown only now.");
        }));
        var list = new Command("list", "Lists users.") { config };
        list.SetAction(parse => Program.Run(() =>
        {
            using var store = GuardianHost.OpenLedger(ServeConfig.Load(parse.GetValue(config)!));
            foreach (var u in store.ListAsync().GetAwaiter().GetResult())
                Console.Out.WriteLine($"{u.Name}\tcreated {u.CreatedAt.UtcDateTime:O}\t{(u.IsActive ? "active" : $"revoked {u.RevokedAt!.Value.UtcDateTime:O}")}");
        }));
        var revokeName = new Argument<string>("name") { Description = "user name" };
        var revoke = new Command("revoke", "Revokes a user's key.") { revokeName, config };
        revoke.SetAction(parse => Program.Run(() =>
        {
            using var store = GuardianHost.OpenLedger(ServeConfig.Load(parse.GetValue(config)!));
            if (!store.RevokeAsync(parse.GetValue(revokeName)!, DateTimeOffset.UtcNow).GetAwaiter().GetResult())
                throw new ArgumentException($"No active user '{parse.GetValue(revokeName)}'.");
            Console.Error.WriteLine($"mg users: revoked '{parse.GetValue(revokeName)}'.");
        }));
        cmd.Subcommands.Add(add);
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(revoke);
        return cmd;
    }

    private static Command AdminKey()
    {
        var cmd = new Command("admin-key", "Makes an admin key: prints the key, and the SHA-256 to put in guardian.json as admin_key_sha256.");
        cmd.SetAction(_ => Program.Run(() =>
        {
            string key = ApiKeys.Generate();
            Console.Out.WriteLine(key);
            Console.Out.WriteLine($"\"admin_key_sha256\": \"{ApiKeys.HashHex(key)}\"");
        }));
        return cmd;
    }

    private static Command Audit()
    {
        var file = new Argument<string>("file") { Description = "audit log (JSON lines)" };
        var verify = new Command("verify", "Checks the audit log's hash chain: any edited, removed or reordered record fails.") { file };
        verify.SetAction(parse => Program.Run(() =>
        {
            string path = parse.GetValue(file)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.");
            var v = FileAuditLog.Verify(path);
            if (!v.Valid) throw new InvalidDataException($"'{path}' FAILS verification: {v.Message}.");
            Console.Out.WriteLine($"{path}: {v.Message}");
        }));
        var cmd = new Command("audit", "Audit-log tools.");
        cmd.Subcommands.Add(verify);
        return cmd;
    }
}
