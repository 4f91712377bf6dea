using ModelGuardian.Engine.Attacks;
using ModelGuardian.Tools;

namespace ModelGuardian.Tests.Attacks;

/// <summary>`mg attack --set Name=value`: any recipe setting by name, case-insensitive; clear errors for unknown names and bad values.</summary>
public sealed class AttackSettingsTests
{
    [Fact]
    public void SettingsOverrideTheRecipeByName()
    {
        var recipe = AttackOptions.For(AttackKind.Dfme, 1000);
        var o = AttackCommand.WithSettings(recipe, ["ReplaySteps=10", "schedule=steps", "ImageShift=-0.5", "GreyImages=false"]);
        Assert.Equal((10, LearningRateSchedule.Steps, -0.5f, false), (o.ReplaySteps, o.Schedule, o.ImageShift, o.GreyImages));
        Assert.Equal(recipe.BatchSize, o.BatchSize);
        Assert.Equal(5, recipe.ReplaySteps); // the recipe itself is untouched
        Assert.Contains("ReplaySteps=10", AttackCommand.Describe(o));
    }

    [Theory]
    [InlineData("NoSuchSetting=1", "no setting")]
    [InlineData("ReplaySteps=many", "is not a Int32")]
    [InlineData("Schedule=Sometimes", "is not a LearningRateSchedule")]
    [InlineData("ReplaySteps", "Name=value")]
    public void BadSettingsAreRefusedWithTheReason(string setting, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => AttackCommand.WithSettings(AttackOptions.For(AttackKind.Dfme, 1000), [setting]));
        Assert.Contains(message, e.Message);
    }
}
