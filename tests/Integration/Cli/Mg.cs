namespace ModelGuardian.Tests.Cli;

/// <summary>Runs `mg` in-process with stdout and stderr captured (tests using it share the "Console" collection).</summary>
internal static class Mg
{
    public static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        TextWriter previousOut = Console.Out, previousErr = Console.Error;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try { return (Tools.Program.Main(args), stdout.ToString(), stderr.ToString()); }
        finally
        {
            Console.SetOut(previousOut);
            Console.SetError(previousErr);
        }
    }
}
