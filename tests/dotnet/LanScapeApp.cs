// A registration program written only against LanScape's documented managed API
// (namespace LanScape, class VoipMediaEngine): it compiles against LanScape.Sip.dll
// unchanged. Run by tests/dotnet.rs against Kamailio:
//   mono LanScapeApp.exe HOST PORT DOMAIN USER PASSWORD
using System;
using System.Collections.Generic;
using System.Threading;
using LanScape;

static class LanScapeApp
{
    static readonly List<string> events = new List<string>();

    // LanScape's event callback: registration events are global notifications.
    static void OnEvent(VoipMediaEngine MediaEngine, VoipMediaEngine.SIP_NOTIFY_TYPE NotifyType, int PhoneLine,
        VoipMediaEngine.TELEPHONY_RETURN_VALUE NotifyEvent, object EventData)
    {
        string what = NotifyEvent + " " + EventData + " line " + PhoneLine;
        Console.WriteLine(what);
        lock (events) { events.Add(what); Monitor.PulseAll(events); }
    }

    static bool WaitFor(string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        lock (events)
        {
            while (!events.Contains(what))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(events, left);
            }
            return true;
        }
    }

    static void Expect(string step, VoipMediaEngine.TELEPHONY_RETURN_VALUE got, VoipMediaEngine.TELEPHONY_RETURN_VALUE want)
    {
        if (got != want) throw new Exception(step + ": " + got + ", expected " + want);
    }

    static int Main(string[] args)
    {
        if (args.Length != 5) { Console.Error.WriteLine("usage: LanScapeApp.exe HOST PORT DOMAIN USER PASSWORD"); return 2; }
        string host = args[0], domain = args[2], user = args[3], password = args[4];
        uint port = uint.Parse(args[1]);
        var ok = VoipMediaEngine.TELEPHONY_RETURN_VALUE.SipSuccess;
        try
        {
            using (var engine = new VoipMediaEngine())
            {
                var start = new VoipMediaEngine.START_SIP_TELEPHONY_PARAMS();
                start.NumPhoneLinesRequested = 2;
                start.UserNotifyCallbackProc = new VoipMediaEngine.SIPCALLBACKPROC(OnEvent);
                start.IpAddressOfThisHost = "127.0.0.1";
                start.SipPort = 0;
                start.PhoneName = "LanScape app";
                Expect("StartSipTelephony", engine.StartSipTelephony(start), ok);
                start = null;
                GC.Collect(); // the callback must survive a collection
                GC.WaitForPendingFinalizers();
                Expect("EnableSipDomain", engine.EnableSipDomain(domain), ok);

                // A refused password is the return value (the first register cycle's outcome).
                Expect("AddAuthorizationCredentials", engine.AddAuthorizationCredentials(user, "wrong", "*"), ok);
                Expect("EnableSipRegisterServer, wrong password",
                    engine.EnableSipRegisterServer("alice,bob", true, false, host, port, 60, 300, 2000, false),
                    VoipMediaEngine.TELEPHONY_RETURN_VALUE.SipRegisterAuthorizationError);
                Expect("ClearAuthorizationCredentials", engine.ClearAuthorizationCredentials(), ok);

                Expect("AddAuthorizationCredentials", engine.AddAuthorizationCredentials(user, password, "*"), ok);
                // Kamailio takes a realm's nonce from any user: sharing changes no outcome.
                engine.ShareChallenges = true;
                Expect("EnableSipRegisterServer",
                    engine.EnableSipRegisterServer("alice,bob", true, false, host, port, 60, 300, 2000, false), ok);
                // Both events were raised before the call returned.
                lock (events)
                {
                    if (!events.Contains("SipRegisterSuccess alice line 0") || !events.Contains("SipRegisterSuccess bob line 1"))
                        throw new Exception("registered without both events: " + string.Join("; ", events));
                }
                Expect("EnableKeepAliveTransmissions", engine.EnableKeepAliveTransmissions(true, false, 30), ok);
                Expect("SendSipKeepAlive", engine.SendSipKeepAlive(host, port, true, 15), ok);
                Expect("SendSipKeepAlive off", engine.SendSipKeepAlive(host, port, false, 0), ok);

                Expect("DisableSipRegisterServer", engine.DisableSipRegisterServer(), ok);
                if (!WaitFor("SipUnregistered alice line 0") || !WaitFor("SipUnregistered bob line 1"))
                    throw new Exception("not unregistered: " + string.Join("; ", events));
                Expect("StopSipTelephony", engine.StopSipTelephony(), ok);
                Expect("after stop", engine.DisableSipRegisterServer(), VoipMediaEngine.TELEPHONY_RETURN_VALUE.SipInvalidHandle);
            }
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("failed: " + e.Message);
            return 1;
        }
        Console.WriteLine("LanScape app OK");
        return 0;
    }
}
