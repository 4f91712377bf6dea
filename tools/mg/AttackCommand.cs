using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ModelGuardian.Engine;
using ModelGuardian.Engine.Attacks;
using ModelGuardian.Engine.Data;
using ModelGuardian.Engine.Eval;

namespace ModelGuardian.Tools;

/// <summary>
/// `mg attack`: one built-in data-free stealing attack against a running `mg serve`, over HTTP with an API key
/// (what an attacker sees), or against the default models in process. Logs clone accuracy against queries,
/// and optionally every query (SHA-256 of what was sent, and the answer) as JSON lines.
/// </summary>
internal static class AttackCommand
{
    public static Command Create()
    {
        var kind = new Argument<string>("attack") { Description = "dfme, maze, dast, disguide, dfms-hl or dual-student" };
        var server = new Option<string?>("--server") { Description = "base URL of an mg serve (e.g. http://127.0.0.1:8080); without it, the default models in process, undefended" };
        var apiKey = new Option<string?>("--api-key") { Description = "the attacker's API key (or env MG_API_KEY)" };
        var budget = new Option<long>("--budget") { Description = "queries to spend", DefaultValueFactory = _ => 2000 };
        var adaptive = new Option<bool>("--adaptive") { Description = "invert DPreds answers (the attacker who knows the scheme)" };
        var models = new Option<string>("--models") { Description = "folder with the default models (its victim serves the in-process attack; its Fashion-MNIST test images measure the clone)", DefaultValueFactory = _ => DemoCommand.DefaultModels };
        var testData = new Option<string?>("--test-data") { Description = "Fashion-MNIST IDX folder or 'debian' for measuring the clone (default: the bundled 1,000)" };
        var classes = new Option<int>("--classes") { Description = "the victim's class count", DefaultValueFactory = _ => FashionMnist.ClassCount };
        var studentWidth = new Option<int>("--student-width") { DefaultValueFactory = _ => 8 };
        var log = new Option<string?>("--log") { Description = "write every query (index, SHA-256 of the float values sent, refused, probabilities) as JSON lines" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1UL };
        var backend = new Option<string>("--backend") { DefaultValueFactory = _ => "auto" };
        var proxy = EvalCommand.ProxyOption();
        var set = new Option<string[]>("--set") { Description = "override a recipe setting, Name=value (e.g. ReplaySteps=10, Schedule=Steps; the names are in docs/attacks.md); repeatable", AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("attack", "Runs one built-in data-free stealing attack against an mg serve (HTTP, API key) or the default victim in process, and prints the clone's accuracy against queries.")
        {
            kind, server, apiKey, budget, adaptive, models, testData, classes, studentWidth, log, seed, backend, proxy, set,
        };
        cmd.SetAction(parse => Program.Run(() =>
        {
            var attackKind = EvalCommand.ParseAttack(parse.GetValue(kind)!);
            int k = parse.GetValue(classes);
            using var kernels = Backends.Create(Backends.Parse(parse.GetValue(backend)!));
            using var loaded = ModelFolder.Load(kernels, parse.GetValue(models)!);
            var testSet = loaded.CloneTestSet(parse.GetValue(testData));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
            IVictimClient victim;
            if (parse.GetValue(server) is { } url)
            {
                string key = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("MG_API_KEY")
                             ?? throw new ArgumentException("--server needs the attacker's --api-key (or MG_API_KEY).");
                victim = new HttpVictimClient(http, new Uri(url), key, k);
            }
            else
            {
                if (parse.GetValue(apiKey) != null) throw new ArgumentException("--api-key applies to --server only.");
                victim = new DefendedVictimClient(loaded.GuardianModels().Victim, new NoDefense());
                Console.Error.WriteLine("mg attack: no --server: attacking the default victim in process, undefended");
            }
            var meter = new BudgetedClient(victim, long.MaxValue, keepLog: parse.GetValue(log) != null);
            var options = WithSettings(AttackOptions.For(attackKind, parse.GetValue(budget), parse.GetValue(seed)) with
            {
                StudentWidth = parse.GetValue(studentWidth),
                AnswerInterpreter = parse.GetValue(adaptive) ? AdaptiveAttacker.Interpreter(k) : null,
            }, parse.GetValue(set) ?? []);
            Console.Error.WriteLine($"mg attack: {Describe(options)}");
            using var attack = AttackFactory.Create(attackKind, kernels, k, options, EvalCommand.LoadProxy(attackKind == AttackKind.DfmsHl, parse.GetValue(proxy)!));
            var result = attack.RunAsync(meter, testSet, new Progress<AttackProgress>(p =>
                ProgressBar.Draw(AttackFactory.DisplayName(attackKind), (int)(100 * p.Spent / Math.Max(1, p.Budget)), $"{p.Spent}/{p.Budget} queries, clone {p.LastCloneAccuracy:P1}   "))).GetAwaiter().GetResult();
            ProgressBar.EndLine();
            if (parse.GetValue(log) is { } path)
                File.WriteAllLines(path, meter.Log.Select(e => JsonSerializer.Serialize(new { index = e.Index, sha256 = e.ImageSha256, refused = e.Refused, probabilities = e.Probabilities })));
            Console.Out.WriteLine("queries,clone_accuracy");
            foreach (var p in result.Curve) Console.Out.WriteLine($"{p.Queries},{p.CloneAccuracy.ToString("F4", CultureInfo.InvariantCulture)}");
            Console.Error.WriteLine($"mg attack: {result.QueriesSpent} queries sent, {result.QueriesAnswered} answered{(result.Terminated ? "; the account was TERMINATED" : "")}; clone accuracy {result.FinalCloneAccuracy:P2}");
        }));
        return cmd;
    }

    /// <summary>The recipe with <c>Name=value</c> overrides applied, by property name (numbers, booleans, enums).</summary>
    internal static AttackOptions WithSettings(AttackOptions options, IEnumerable<string> settings)
    {
        var result = options with { };
        foreach (string setting in settings)
        {
            int eq = setting.IndexOf('=');
            if (eq <= 0) throw new ArgumentException($"--set takes Name=value, got '{setting}'.");
            string name = setting[..eq].Trim(), text = setting[(eq + 1)..].Trim();
            var property = Settable().FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
                           ?? throw new ArgumentException($"--set: no setting '{name}'; known: {string.Join(", ", Settable().Select(p => p.Name))}.");
            object value;
            try
            {
                value = property.PropertyType.IsEnum
                    ? Enum.Parse(property.PropertyType, text, ignoreCase: true)
                    : Convert.ChangeType(text, property.PropertyType, CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                throw new ArgumentException($"--set {name}: '{text}' is not a {property.PropertyType.Name}.");
            }
            property.SetValue(result, value);
        }
        return result;
    }

    private static IEnumerable<System.Reflection.PropertyInfo> Settable() => typeof(AttackOptions).GetProperties()
        .Where(p => p.CanWrite && (p.PropertyType.IsPrimitive || p.PropertyType.IsEnum));

    internal static string Describe(AttackOptions options) =>
        string.Join(", ", Settable().Select(p => $"{p.Name}={Convert.ToString(p.GetValue(options), CultureInfo.InvariantCulture)}"));
}
