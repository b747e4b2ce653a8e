// The profile registry through LanScape.Sip.dll's objects: a registry with events, a
// profile enabled until registered, its state, exceptions carrying the code. Run by
// tests/dotnet.rs against Kamailio:
//   mono ProfilesApp.exe HOST PORT DOMAIN USER PASSWORD
using System;
using System.Collections.Generic;
using System.Threading;
using LanScape;
using LanScape.Sip;

static class ProfilesApp
{
    static readonly List<string> seen = new List<string>();

    static void Note(string what)
    {
        Console.WriteLine(what);
        lock (seen) { seen.Add(what); Monitor.PulseAll(seen); }
    }

    static bool WaitFor(string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        lock (seen)
        {
            while (!seen.Contains(what))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(seen, left);
            }
            return true;
        }
    }

    static int Main(string[] args)
    {
        if (args.Length != 5) { Console.Error.WriteLine("usage: ProfilesApp.exe HOST PORT DOMAIN USER PASSWORD"); return 2; }
        string host = args[0], port = args[1], domain = args[2], user = args[3], password = args[4];
        try
        {
            // The managed codes are the library's: same values, same names.
            foreach (VoipMediaEngine.TELEPHONY_RETURN_VALUE code in Enum.GetValues(typeof(VoipMediaEngine.TELEPHONY_RETURN_VALUE)))
            {
                if (VoipMediaEngine.ReturnValueText(code) != code.ToString())
                    throw new Exception("code " + (int)code + " is " + VoipMediaEngine.ReturnValueText(code) + " in the library");
            }
            int count = Enum.GetValues(typeof(VoipMediaEngine.TELEPHONY_RETURN_VALUE)).Length;
            if (VoipMediaEngine.ReturnValueText((VoipMediaEngine.TELEPHONY_RETURN_VALUE)count) != "unknown")
                throw new Exception("the library has codes the assembly lacks");
            using (var registry = new ProfileRegistry())
            {
                registry.StateChanged += (sender, e) => Note("profile " + e.ProfileId + " " + e.State);
                registry.ErrorOccurred += (sender, e) => Note("profile " + e.ProfileId + " error " + e.Error);
                registry.SetCloseTimeout(3000);
                try
                {
                    registry.Create(new ProfileSettings { Aor = "not an address", Registrar = host + ":" + port });
                    throw new Exception("a malformed AOR was accepted");
                }
                catch (SipException e)
                {
                    if (e.Code != VoipMediaEngine.TELEPHONY_RETURN_VALUE.SipBadParameter) throw;
                    Console.WriteLine("refused: " + e.Message);
                }
                uint id = registry.Create(new ProfileSettings
                {
                    Aor = "carol@" + domain,
                    Registrar = host + ":" + port,
                    AuthUser = user,
                    Password = password,
                    ExpiresSeconds = 300,
                });
                using (var profile = registry.Retrieve(id))
                {
                    profile.Enable();
                    if (!WaitFor("profile " + id + " Registered")) throw new Exception("not registered");
                    if (profile.State != ProfileState.Registered) throw new Exception("state " + profile.State);
                    profile.Disable();
                    if (!WaitFor("profile " + id + " Unregistered")) throw new Exception("not unregistered");
                }
                registry.Remove(id);
                try
                {
                    registry.Retrieve(id);
                    throw new Exception("a removed profile was retrieved");
                }
                catch (SipException e)
                {
                    if (e.Code != VoipMediaEngine.TELEPHONY_RETURN_VALUE.SipProfileNotFound) throw;
                }
            }
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("failed: " + e);
            return 1;
        }
        Console.WriteLine("profiles app OK");
        return 0;
    }
}
