using ModelGuardian.Tools;

namespace ModelGuardian.Tests.Cli;

/// <summary>Progress suits its stream: redraws on a terminal, a few whole lines in a log.</summary>
[Collection("Console")]
public sealed class ProgressBarTests : IDisposable
{
    private readonly TextWriter _stderr = Console.Error;
    private readonly Func<bool> _live = ProgressBar.IsLive;

    public void Dispose()
    {
        Console.SetError(_stderr);
        ProgressBar.IsLive = _live;
    }

    private static string Run(bool live)
    {
        ProgressBar.IsLive = () => live;
        var captured = new StringWriter();
        Console.SetError(captured);
        for (int step = 0; step <= 600; step++) ProgressBar.Draw($"training {live}", step * 100 / 600, $"({step}/600)");
        ProgressBar.EndLine();
        return captured.ToString();
    }

    [Fact]
    public void A_log_gets_a_line_per_quarter_and_no_carriage_returns()
    {
        string log = Run(live: false);
        Assert.DoesNotContain('\r', log);
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["training False 0% (0/600)", "training False 25% (150/600)", "training False 50% (300/600)",
                      "training False 75% (450/600)", "training False 100% (600/600)"], lines);
    }

    [Fact]
    public void A_terminal_gets_one_redrawn_line()
    {
        string screen = Run(live: true);
        Assert.Equal(601, screen.Count(c => c == '\r'));
        Assert.EndsWith("100% (600/600)" + Environment.NewLine, screen);
    }
}
